package modelward.rules.license_test

import data.modelward.lib_test as t
import data.modelward.rules.license
import rego.v1

lic(id) := t.artifact({"license": {"id": id}})

test_noncommercial_warns if {
	ds := license.check(t.inventory([lic("cc-by-nc-4.0")]), t.settings({}))
	count(ds) == 1
	ds[0].rule == "license-noncommercial"
	ds[0].action == "warn"
}

test_noncommercial_denies_when_commercial if {
	ds := license.check(t.inventory([lic("mrl")]), t.settings({"commercial": true}))
	ds[0].action == "deny"
}

test_unknown_warns if {
	ds := license.check(t.inventory([lic("unknown")]), t.settings({}))
	ds[0].rule == "license-unknown"
}

test_denied_license if {
	ds := license.check(t.inventory([lic("apache-2.0")]), t.settings({"denied_licenses": ["apache-2.0"]}))
	ds[0].rule == "license-denied"
	ds[0].action == "deny"
}

test_allowed_license_exempts if {
	count(license.check(t.inventory([lic("cc-by-nc-4.0")]), t.settings({"allowed_licenses": ["cc-by-nc-4.0"]}))) == 0
}

test_permissive_passes if {
	count(license.check(t.inventory([lic("apache-2.0")]), t.settings({}))) == 0
}

test_verdict_by_rule if {
	license.verdict("license-denied", t.settings({})) == {"rule": "license-denied", "action": "deny", "severity": "high", "text": " is denied by the settings"}
	license.verdict("license-unknown", t.settings({"commercial": true})).action == "deny"
	license.verdict("license-unknown", t.settings({"commercial": true})).severity == "high"
	license.verdict("license-noncommercial", t.settings({})).action == "warn"
	not license.verdict("license-allowed", t.settings({}))
}

test_one_decision_per_artifact_of_a_class if {
	ds := license.check(t.inventory([lic("mrl"), lic("MRL"), lic("apache-2.0")]), t.settings({}))
	count(ds) == 2
	ds[1].message == "/m/model.bin: license mrl forbids commercial use"
	ds[1].subject == {"kind": "artifact", "path": "/m/model.bin", "sha256": "aa"}
}
