# Runtime rules, over the inventory's runtimes (installed or running, with the sockets they
# listen on and the tunnels that forward them).
#
# runtime-exposed: a runtime listening on a non-loopback address (or forwarded by a tunnel such as
#   ngrok) is denied unless settings.allow_network_exposure: local inference servers have no
#   authentication, so anyone who can reach the port can use, pull or push models. Its action is
#   `stop` when settings.stop_exposed_runtimes is true: `modelward policy enforce --apply` then
#   terminates (SIGTERM, never SIGKILL) the runtime's processes that listen on a network address.
#   Runtimes are never stopped by default.
# runtime-not-allowed: when settings.allowed_runtimes is not empty, another runtime is denied.
package modelward.rules.runtime

import data.modelward.lib
import rego.v1

decisions := array.concat(exposed(input, data.modelward.settings), not_allowed(input, data.modelward.settings))

exposed(inv, s) := [d |
	not s.allow_network_exposure
	some r in object.get(inv, "runtimes", [])
	addrs := [sprintf("%s:%v", [l.address, l.port]) | some l in object.get(r, "listen", []); l.exposed == true]
	tunnels := [f.evidence | some f in object.get(r, "findings", []); f.rule == "runtime.tunnel"]
	count(addrs) + count(tunnels) > 0
	d := {
		"rule": "runtime-exposed",
		"action": exposed_action(s),
		"severity": "high",
		"subject": lib.runtime(r),
		"message": concat("", [r.name, " is reachable from the network (", concat(", ", array.concat(addrs, tunnels)), "): bind it to 127.0.0.1"]),
	}
]

exposed_action(s) := "stop" if {
	object.get(s, "stop_exposed_runtimes", false) == true
} else := "deny"

not_allowed(inv, s) := [d |
	count(s.allowed_runtimes) > 0
	some r in object.get(inv, "runtimes", [])
	not r.name in s.allowed_runtimes
	d := {
		"rule": "runtime-not-allowed",
		"action": "deny",
		"severity": "medium",
		"subject": lib.runtime(r),
		"message": concat("", [r.name, " is not in allowed_runtimes"]),
	}
]
