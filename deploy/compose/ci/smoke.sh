#!/bin/sh
# The stack's smoke test, run by run.sh in a container on the stack's
# network, through the routers as a client would:
#
#   smoke.sh flow           browse, add to the basket, check out (in a trace
#                           of our own), a subscription on the other router
#                           receives the notification, the payment reads
#                           COMPLETED, and the collector received that
#                           checkout as one trace spanning the router and
#                           every subgraph it touched
#   smoke.sh steady SECONDS catalogue and basket reads for SECONDS over both
#                           routers, one after the other; fails on any answer
#                           that is not a clean 200 (run while a replica dies)
#
# ALICE_TOKEN is a shopper's JWT the stack accepts.
set -eu

ROUTER_1=http://router-1:4000/graphql
ROUTER_2=http://router-2:4000/graphql
COLLECTOR=http://otel-collector:4318

fail() {
    echo "smoke: FAILED: $*" >&2
    exit 1
}

# gql URL TOKEN QUERY VARIABLES_JSON [EXTRA_CURL_ARGS...]: the response
# body; fails on a transport error or a status other than 200.
gql() {
    url=$1 token=$2 query=$3 variables=$4
    shift 4
    body=$(jq -cn --arg q "$query" --argjson v "$variables" '{query: $q, variables: $v}')
    curl -sS --fail-with-body --max-time 20 "$url" \
        -H 'content-type: application/json' -H "authorization: Bearer $token" \
        "$@" -d "$body"
}

# Fails unless the GraphQL answer has data and no errors; prints it.
ok() {
    echo "$1" | jq -e '(.errors // []) == [] and .data != null' >/dev/null \
        || fail "$2: $1"
    echo "$1"
}

flow() {
    products=$(ok "$(gql "$ROUTER_1" "$ALICE_TOKEN" \
        '{ products(first: 10, sort: PRICE, filter: {inStock: true}) { edges { node { id name stockQuantity price { amount } } } } }' '{}')" browse)
    product=$(echo "$products" | jq -er '.data.products.edges[0].node.id') || fail "no product in stock: $products"
    echo "smoke: browse ok ($(echo "$products" | jq '.data.products.edges | length') products in stock)"

    # The notification must reach a subscriber on the other router.
    events=$(mktemp)
    curl -sSN --max-time 60 "$ROUTER_2" -H "authorization: Bearer $ALICE_TOKEN" \
        -H 'accept: text/event-stream' -H 'content-type: application/json' \
        -d '{"query":"subscription { notificationAdded { id type title } }"}' > "$events" &
    subscriber=$!
    sleep 1

    ok "$(gql "$ROUTER_1" "$ALICE_TOKEN" \
        'mutation($id: ID!) { addBasketItem(productId: $id, quantity: 1) { itemCount } }' \
        "{\"id\": \"$product\"}")" add >/dev/null
    echo "smoke: add ok"

    trace_id=$(tr -d '-' < /proc/sys/kernel/random/uuid)
    caller_span=$(tr -d '-' < /proc/sys/kernel/random/uuid | cut -c1-16)
    key="smoke-$(tr -d '-' < /proc/sys/kernel/random/uuid)"
    paid=$(ok "$(gql "$ROUTER_1" "$ALICE_TOKEN" \
        'mutation($key: String!) { checkout(input: {idempotencyKey: $key, method: CARD, card: {number: "4242424242424242", expMonth: 12, expYear: 2030, cvc: "123"}}) { id status amount { amount } } }' \
        "{\"key\": \"$key\"}" -H "traceparent: 00-${trace_id}-${caller_span}-01")" checkout)
    payment=$(echo "$paid" | jq -r '.data.checkout.id')
    echo "smoke: checkout ok (payment $payment, $(echo "$paid" | jq -r '.data.checkout.status'), trace $trace_id)"

    for _ in $(seq 1 60); do
        grep -q '"notificationAdded"' "$events" && break
        sleep 0.5
    done
    kill "$subscriber" 2>/dev/null || true
    grep -q '"notificationAdded"' "$events" || fail "no notification over the subscription: $(cat "$events")"
    echo "smoke: subscription ok ($(grep -o '"title":"[^"]*"' "$events" | head -n 1))"

    for _ in $(seq 1 60); do
        status=$(gql "$ROUTER_2" "$ALICE_TOKEN" '{ me { payments(first: 20) { edges { node { id status } } } } }' '{}' \
            | jq -r --arg id "$payment" '.data.me.payments.edges[].node | select(.id == $id) | .status')
        [ "$status" = COMPLETED ] && break
        sleep 0.5
    done
    [ "$status" = COMPLETED ] || fail "payment $payment is $status, not COMPLETED"
    echo "smoke: payment ok (COMPLETED, read through the other router)"

    # The checkout's trace: spans of the router and of every subgraph the
    # checkout crossed (payment, which asks basket and product), one tree
    # under our span. Exporters batch: wait for it.
    want='["shopgraph-basket","shopgraph-payment","shopgraph-product","shopgraph-router"]'
    for _ in $(seq 1 60); do
        spans=$(curl -sS --max-time 5 "$COLLECTOR/traces/$trace_id")
        services=$(echo "$spans" | jq -c '[.[].service] | unique')
        [ "$(echo "$services" | jq -c --argjson want "$want" '$want - . | length')" = 0 ] && break
        sleep 0.5
    done
    [ "$(echo "$services" | jq -c --argjson want "$want" '$want - . | length')" = 0 ] \
        || fail "trace $trace_id has spans of $services, not of all of $want"
    # Spans still in an exporter's batch may have children here already:
    # wait for their parents before calling them loose.
    for _ in $(seq 1 20); do
        loose=$(echo "$spans" | jq -c --arg root "$caller_span" \
            '[.[].span_id] as $ids | [.[] | select(.parent_span_id != $root and (.parent_span_id as $p | $ids | index($p) | not))] | map(.service + ":" + .name)')
        [ "$loose" = "[]" ] && break
        sleep 0.5
        spans=$(curl -sS --max-time 5 "$COLLECTOR/traces/$trace_id")
    done
    [ "$loose" = "[]" ] || fail "spans of trace $trace_id cut loose from it: $loose"
    echo "smoke: trace ok ($(echo "$spans" | jq length) spans from $services, one tree)"
}

steady() {
    seconds=$1
    end=$(( $(date +%s) + seconds ))
    sent=0 failed=0
    while [ "$(date +%s)" -lt "$end" ]; do
        for router in "$ROUTER_1" "$ROUTER_2"; do
            sent=$((sent + 1))
            answer=$(gql "$router" "$ALICE_TOKEN" \
                '{ products(first: 5, sort: NAME) { edges { node { id name stockQuantity } } } me { basket { itemCount } } }' '{}' 2>&1) \
                && echo "$answer" | jq -e '(.errors // []) == [] and (.data.products.edges | length) == 5' >/dev/null \
                || { failed=$((failed + 1)); echo "smoke: failed answer: $answer" >&2; }
        done
    done
    echo "smoke: steady: $sent requests, $failed failed"
    [ "$failed" = 0 ] || fail "$failed of $sent requests failed"
}

case "${1:-}" in
    flow) flow ;;
    steady) steady "${2:?seconds}" ;;
    *) echo "usage: smoke.sh flow | steady SECONDS" >&2; exit 2 ;;
esac
