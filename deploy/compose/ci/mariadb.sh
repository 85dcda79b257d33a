#!/bin/sh
# CI stand-in for the official mariadb image's entrypoint, on Debian's
# MariaDB: a first start makes the data directory, MARIADB_DATABASE and
# MARIADB_USER (with MARIADB_PASSWORD, from any host, all rights on that
# database); every start then serves on all addresses. Runs as root;
# mariadbd drops to the mysql user.
set -eu
data=/var/lib/mysql
if [ ! -d "$data/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$data" --skip-test-db \
        --auth-root-authentication-method=socket >/dev/null
    mariadbd --user=mysql --datadir="$data" --skip-networking --socket=/tmp/init.sock --pid-file=/tmp/init.pid &
    server=$!
    for _ in $(seq 1 120); do
        mariadb-admin --socket=/tmp/init.sock ping >/dev/null 2>&1 && break
        sleep 0.25
    done
    mariadb --socket=/tmp/init.sock <<SQL
CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE}\`;
CREATE USER '${MARIADB_USER}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD}';
GRANT ALL ON \`${MARIADB_DATABASE}\`.* TO '${MARIADB_USER}'@'%';
SQL
    mariadb-admin --socket=/tmp/init.sock shutdown
    wait "$server"
fi
exec mariadbd --user=mysql --datadir="$data" --bind-address=0.0.0.0 --socket=/tmp/mysqld.sock --pid-file=/tmp/mysqld.pid
