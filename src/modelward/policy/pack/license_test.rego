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
