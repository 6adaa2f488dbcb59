# cloud-model: an Ollama cloud model warns unless settings.allow_cloud_models: it looks local, but
# the prompts sent to it leave the machine for ollama.com.
package modelward.rules.cloud_model

import data.modelward.lib
import rego.v1

decisions := check(input, data.modelward.settings)

is_cloud(a) if a.metadata.ollama.cloud == true

is_cloud(a) if {
	some f in a.findings
	f.rule == "ollama.cloud-model"
}

check(inv, s) := [d |
	not s.allow_cloud_models
	some a in inv.artifacts
	is_cloud(a)
	d := {
		"rule": "cloud-model",
		"action": "warn",
		"severity": "medium",
		"subject": {"kind": "artifact", "path": a.path, "sha256": object.get(a, "sha256", null)},
		"message": concat("", [a.path, ": a cloud model: prompts sent to it leave the machine"]),
	}
]
