package modelward.rules.code_execution_test

import data.modelward.lib_test as t
import data.modelward.rules.code_execution
import rego.v1

finding(sev) := {"rule": "pickle.dangerous-global", "severity": sev, "message": "os.system"}

test_critical_finding_quarantines if {
	ds := code_execution.check(t.inventory([t.artifact({"findings": [finding("critical")]})]), t.settings({}))
	count(ds) == 1
	ds[0].action == "quarantine"
	ds[0].severity == "critical"
}

test_medium_finding_passes_by_default if {
	ds := code_execution.check(t.inventory([t.artifact({"findings": [finding("medium")]})]), t.settings({}))
	count(ds) == 0
}

test_block_severity_lowers_the_bar if {
	ds := code_execution.check(t.inventory([t.artifact({"findings": [finding("medium")]})]), t.settings({"block_severity": "medium"}))
	count(ds) == 1
}

test_clean_artifact_passes if {
	count(code_execution.check(t.inventory([t.artifact({})]), t.settings({}))) == 0
}
