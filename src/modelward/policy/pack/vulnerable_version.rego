# vulnerable-version: a runtime or inference library whose version has a known vulnerability (the
# inventory's *.vulnerable-version findings, from modelward's advisory table) is denied: upgrade it.
package modelward.rules.vulnerable_version

import data.modelward.lib
import rego.v1

decisions := array.concat(runtimes(input), packages(input))

runtimes(inv) := [d |
	some r in object.get(inv, "runtimes", [])
	some f in object.get(r, "findings", [])
	endswith(f.rule, "vulnerable-version")
	d := {
		"rule": "vulnerable-version",
		"action": "deny",
		"severity": f.severity,
		"subject": lib.runtime(r),
		"message": sprintf("%s %v: %s", [r.name, r.version, f.message]),
	}
]

packages(inv) := [d |
	some p in object.get(inv, "packages", [])
	some f in object.get(p, "findings", [])
	endswith(f.rule, "vulnerable-version")
	d := {
		"rule": "vulnerable-version",
		"action": "deny",
		"severity": f.severity,
		"subject": {"kind": "package", "name": sprintf("%s==%v", [p.name, p.version])},
		"message": sprintf("%s %v (%v): %s", [p.name, p.version, object.get(p, "environment", ""), f.message]),
	}
]
