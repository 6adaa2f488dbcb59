package modelward.rules.vulnerable_version_test

import data.modelward.rules.vulnerable_version
import rego.v1

vuln := {"rule": "runtime.vulnerable-version", "severity": "critical", "message": "CVE-2024-37032"}

test_vulnerable_runtime_denied if {
	ds := vulnerable_version.runtimes({"runtimes": [{"name": "ollama", "version": "0.1.33", "findings": [vuln]}]})
	count(ds) == 1
	ds[0].action == "deny"
	ds[0].severity == "critical"
}

test_vulnerable_package_denied if {
	f := {"rule": "package.vulnerable-version", "severity": "high", "message": "CVE"}
	ds := vulnerable_version.packages({"packages": [{"name": "llama-cpp-python", "version": "0.2.50", "findings": [f]}]})
	ds[0].subject.kind == "package"
}

test_patched_runtime_passes if {
	count(vulnerable_version.runtimes({"runtimes": [{"name": "ollama", "version": "0.5.0", "findings": []}]})) == 0
}
