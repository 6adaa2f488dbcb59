package modelward.rules.unapproved_model_test

import data.modelward.lib_test as t
import data.modelward.rules.unapproved_model
import rego.v1

test_off_without_lists if {
	count(unapproved_model.check(t.inventory([t.artifact({})]), t.settings({}))) == 0
}

test_unapproved_warns if {
	ds := unapproved_model.check(t.inventory([t.artifact({})]), t.settings({"approved_sha256": ["bb"]}))
	count(ds) == 1
	ds[0].action == "warn"
}

test_approved_origin_passes if {
	a := t.artifact({"source": {"kind": "ollama", "name": "llama3.1:8b"}})
	count(unapproved_model.check(t.inventory([a]), t.settings({"approved_origins": ["llama3.1:*"]}))) == 0
}

# With modelward's precomputed facts, as its engine hands them over: only the true facts, if any.
test_precomputed_facts_are_read if {
	facts := {"precomputed": {"license_ids": []}, "artifacts": [
		object.union(t.artifact({"path": "/a"}), {"precomputed": {"digest_approved": true}}),
		object.union(t.artifact({"path": "/b"}), {"precomputed": {"origin_approved": true}}),
		t.artifact({"path": "/c"}),
	]}
	ds := unapproved_model.check(facts, t.settings({"approved_sha256": ["zz"]}))
	[d.subject.path | some d in ds] == ["/c"]
}
