# A NAT lab from network namespaces, veth pairs and nftables; sourced by tests.
#
#   public network  203.0.113.0/24 (documentation prefix), a bridge in namespace $NL_PUB where
#                   ferry runs; its addresses are the test's choice (netlab_public).
#   a NAT router    per client network: 203.0.113.(10+i) outside, 10.i.0.1/24 inside, with
#                   nftables doing one kind of NAT (netlab_client).
#   a client        10.i.0.2/24 behind it, in its own namespace.
#
# Kinds of NAT:
#   eim        endpoint-independent mapping: port-preserving masquerade; one public port per
#              local port whatever the destination (a "full cone"-like NAT, filtering by the
#              kernel's connection tracking)
#   symmetric  address-and-port-dependent mapping: masquerade with random ports, a new public
#              port for every destination
#   tcp-only   only TCP to ferry's ports leaves (NL_TCP_ONLY_TO, NL_TCP_ONLY_PORTS); everything
#              else from the client network is dropped at the router
#
# Every name is unique to this run (netlab_init) and netlab_cleanup removes what was made, so a
# trap can call it whatever failed. Nothing here sends a packet outside these namespaces.

NL_ID=""
NL_PUB=""
NL_NAMESPACES=()
NL_CLIENT=""
NL_TCP_ONLY_TO=203.0.113.1           # where a tcp-only network's TCP may go
NL_TCP_ONLY_PORTS="3478, 5349, 8443" # ... and to which ports (TURN, TURN over TLS, signaling)

# netlab_unavailable: prints why the lab cannot be built here, or nothing when it can.
netlab_unavailable() {
    [ "$(id -u)" -eq 0 ] || { echo "network namespaces need root"; return; }
    command -v ip >/dev/null || { echo "iproute2's ip is missing"; return; }
    command -v nft >/dev/null || { echo "nftables' nft is missing"; return; }
    local probe="flprobe$$"
    ip netns add "$probe" 2>/dev/null || { echo "cannot create a network namespace"; return; }
    if ! ip netns exec "$probe" nft add table ip t 2>/dev/null; then
        ip netns del "$probe"
        echo "nftables does not work in a namespace here"
        return
    fi
    ip netns del "$probe"
}

netlab_init() {
    NL_ID=$(printf '%04x' $((RANDOM % 65536)))$$
    NL_ID=${NL_ID:0:8}
    NL_PUB="fl${NL_ID}pub"
    ip netns add "$NL_PUB"
    NL_NAMESPACES+=("$NL_PUB")
    ip -n "$NL_PUB" link set lo up
    ip -n "$NL_PUB" link add br0 type bridge
    ip -n "$NL_PUB" link set br0 up
}

# netlab_public ADDR...: gives the public network's bridge these addresses (/24 each), the
# addresses ferry listens on.
netlab_public() {
    local a
    for a in "$@"; do ip -n "$NL_PUB" addr add "$a/24" dev br0; done
}

# netlab_client INDEX KIND: a NAT router of KIND and a client network behind it; the client's
# namespace, "fl${NL_ID}c$INDEX", is left in NL_CLIENT. (Not called in $(...): the names it
# records for netlab_cleanup would stay in the subshell.)
netlab_client() {
    local i=$1 kind=$2
    local router="fl${NL_ID}r$i" client="fl${NL_ID}c$i"
    ip netns add "$router"
    NL_NAMESPACES+=("$router")
    ip netns add "$client"
    NL_NAMESPACES+=("$client")
    ip -n "$router" link set lo up
    ip -n "$client" link set lo up
    # router <-> public bridge
    ip link add "fl${NL_ID}o$i" netns "$router" type veth peer name "p$i" netns "$NL_PUB"
    ip -n "$NL_PUB" link set "p$i" master br0 up
    ip -n "$router" link set "fl${NL_ID}o$i" name wan
    ip -n "$router" link set wan up
    ip -n "$router" addr add "203.0.113.$((10 + i))/24" dev wan
    # router <-> client
    ip link add "fl${NL_ID}i$i" netns "$router" type veth peer name "fl${NL_ID}e$i" netns "$client"
    ip -n "$router" link set "fl${NL_ID}i$i" name lan
    ip -n "$router" link set lan up
    ip -n "$router" addr add "10.$i.0.1/24" dev lan
    ip -n "$client" link set "fl${NL_ID}e$i" name eth0
    ip -n "$client" link set eth0 up
    ip -n "$client" addr add "10.$i.0.2/24" dev eth0
    ip -n "$client" route add default via "10.$i.0.1"
    ip netns exec "$router" sysctl -qw net.ipv4.ip_forward=1
    local masq
    case "$kind" in
    eim) masq="masquerade persistent" ;;
    symmetric) masq="masquerade random" ;;
    tcp-only) masq="masquerade" ;;
    *) echo "netlab: unknown NAT kind $kind" >&2; return 1 ;;
    esac
    ip netns exec "$router" nft -f - <<NFT
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" ip saddr 10.$i.0.0/24 $masq
    }
}
table ip filter {
    # Unsolicited datagrams to the router itself are dropped, as home routers do, not answered
    # with port-unreachable: connection tracking confirms an entry only for a packet it lets
    # through, and an entry for an early hole-punching packet would take the very tuple the
    # client's own reply needs, so the NAT would move the client to another port.
    chain input {
        type filter hook input priority filter; policy accept;
        iifname "wan" ct state new drop
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        $( [ "$kind" = tcp-only ] && echo "iifname \"lan\" ip daddr $NL_TCP_ONLY_TO tcp dport { $NL_TCP_ONLY_PORTS } accept" )
        $( [ "$kind" = tcp-only ] && echo 'iifname "lan" drop' )
    }
}
NFT
    NL_CLIENT=$client
}

nl_exec() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# netlab_start_ferry CONFIG: ferry ($FERRY_BIN) on the public network, its log in
# $WORK/ferry.log, its PID added to PIDS (lib.sh stops it); fails the test if it does not start.
# Ports in the lab are fixed (3478, 8443, ...): its namespaces are this test's alone, so no other
# test can hold them, and the addresses are ones a real deployment would use.
netlab_start_ferry() {
    nl_exec "$NL_PUB" "$FERRY_BIN" --config "$1" >"$WORK/ferry.log" 2>&1 &
    PIDS+=($!)
    local _
    for _ in $(seq 100); do grep -q " started: " "$WORK/ferry.log" && return 0; sleep 0.1; done
    fail "ferry did not start in the public namespace: $(cat "$WORK/ferry.log")"
}

netlab_cleanup() {
    local ns
    for ns in "${NL_NAMESPACES[@]}"; do
        # Processes still inside (a server, a browser) go first: a namespace with processes in
        # it outlives its name.
        local pids
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] && kill $pids 2>/dev/null || true
    done
    sleep 0.2
    for ns in "${NL_NAMESPACES[@]}"; do
        local pids
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    NL_NAMESPACES=()
}
