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

# With modelward's precomputed facts, as its engine hands them over: only the true facts, if any.
test_precomputed_facts_are_read if {
	facts := {"precomputed": {"license_ids": []}, "artifacts": [
		object.union(t.artifact({"path": "/a", "format": "pickle"}), {"precomputed": {"digest_approved": true}}),
		t.artifact({"path": "/b", "format": "joblib"}),
		object.union(t.artifact({"path": "/c", "format": "gguf"}), {"precomputed": {}}),
	]}
	ds := unapproved_pickle.check(facts, t.settings({}))
	[d.subject.path | some d in ds] == ["/b"]
}
