# code-execution: an artifact with a scanner finding at or above settings.block_severity (default
# high; critical findings always count) goes to quarantine. Such findings mean that loading the
# file can run code (a dangerous pickle global, a Keras Lambda, a template that escapes its sandbox):
# the file should not stay where a loader can find it.
package modelward.rules.code_execution

import data.modelward.lib
import rego.v1

decisions := check(input, data.modelward.settings)

check(inv, s) := [d |
	some a in inv.artifacts
	a.findings[0] # cheap test first: most artifacts have no finding
	ranks := [lib.rank[f.severity] | some f in a.findings]
	count(ranks) > 0
	top := max(ranks)
	top >= lib.rank[s.block_severity]
	rules := [f.rule | some f in a.findings; lib.rank[f.severity] >= lib.rank[s.block_severity]]
	d := {
		"rule": "code-execution",
		"action": "quarantine",
		"severity": lib.severities[top],
		"subject": {"kind": "artifact", "path": a.path, "sha256": object.get(a, "sha256", null)},
		"message": concat("", [a.path, ": scanner findings at or above ", s.block_severity, " (", concat(", ", rules), "): loading it can run code"]),
	}
]
