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
