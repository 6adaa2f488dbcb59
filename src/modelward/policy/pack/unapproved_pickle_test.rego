package modelward.rules.unapproved_pickle_test

import data.modelward.lib_test as t
import data.modelward.rules.unapproved_pickle
import rego.v1

test_pickle_denied if {
	ds := unapproved_pickle.check(t.inventory([t.artifact({"format": "pytorch"})]), t.settings({}))
	count(ds) == 1
	ds[0].action == "deny"
}

test_approved_digest_passes if {
	ds := unapproved_pickle.check(t.inventory([t.artifact({"format": "pickle"})]), t.settings({"approved_sha256": ["aa"]}))
	count(ds) == 0
}

test_safetensors_passes if {
	count(unapproved_pickle.check(t.inventory([t.artifact({})]), t.settings({}))) == 0
}
