-- One database per PostgreSQL subgraph (payment is on MariaDB).
CREATE DATABASE product OWNER shopgraph;
CREATE DATABASE basket OWNER shopgraph;
CREATE DATABASE notification OWNER shopgraph;
