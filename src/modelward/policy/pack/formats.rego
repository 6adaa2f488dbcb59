# format-not-allowed: when settings.allowed_formats is not empty, an artifact of another format is
# denied (for example: only safetensors and gguf).
package modelward.rules.formats

import rego.v1

decisions := check(input, data.modelward.settings)

check(inv, s) := [d |
	count(s.allowed_formats) > 0
	some a in inv.artifacts
	not a.format in s.allowed_formats
	d := {
		"rule": "format-not-allowed",
		"action": "deny",
		"severity": "medium",
		"subject": {"kind": "artifact", "path": a.path, "sha256": object.get(a, "sha256", null)},
		"message": concat("", [a.path, ": format ", a.format, " is not in allowed_formats"]),
	}
]
