package modelward.rules.runtime_test

import data.modelward.lib_test as t
import data.modelward.rules.runtime
import rego.v1

rt(address, exposed) := {"name": "ollama", "version": "0.3.1", "listen": [{"address": address, "port": 11434, "exposed": exposed}], "findings": []}

inv(r) := {"artifacts": [], "runtimes": [r], "packages": []}

test_exposed_denied if {
	ds := runtime.exposed(inv(rt("0.0.0.0", true)), t.settings({}))
	count(ds) == 1
	ds[0].rule == "runtime-exposed"
}

test_exposed_is_denied_not_stopped_by_default if {
	ds := runtime.exposed(inv(rt("0.0.0.0", true)), t.settings({}))
	ds[0].action == "deny"
}

test_exposed_is_stopped_with_the_flag if {
	ds := runtime.exposed(inv(rt("0.0.0.0", true)), t.settings({"stop_exposed_runtimes": true}))
	count(ds) == 1
	ds[0].action == "stop"
	ds[0].subject == {"kind": "runtime", "name": "ollama"}
}

test_the_flag_stops_nothing_when_exposure_is_allowed if {
	s := t.settings({"stop_exposed_runtimes": true, "allow_network_exposure": true})
	count(runtime.exposed(inv(rt("0.0.0.0", true)), s)) == 0
}

test_loopback_passes if {
	count(runtime.exposed(inv(rt("127.0.0.1", false)), t.settings({}))) == 0
}

test_exposure_allowed if {
	count(runtime.exposed(inv(rt("0.0.0.0", true)), t.settings({"allow_network_exposure": true}))) == 0
}

test_runtime_not_allowed if {
	ds := runtime.not_allowed(inv(rt("127.0.0.1", false)), t.settings({"allowed_runtimes": ["vllm"]}))
	ds[0].rule == "runtime-not-allowed"
}
