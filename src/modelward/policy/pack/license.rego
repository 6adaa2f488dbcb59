# License rules. The license id is Hugging Face's identifier (apache-2.0, cc-by-nc-4.0, llama3.1 ...)
# or "unknown".
#
# license-denied: a license in settings.denied_licenses is denied.
# license-noncommercial: a non-commercial license (cc-by-nc*, mrl, research-only ...) warns, and
#   denies when settings.commercial is true, unless it is in settings.allowed_licenses.
# license-unknown: a model whose license is unknown warns (denies when commercial): nobody can
#   tell whether it may be used.
# license-not-allowed: when settings.allowed_licenses is not empty, any other license warns
#   (denies when commercial).
package modelward.rules.license

import data.modelward.lib
import rego.v1

decisions := check(input, data.modelward.settings)

check(inv, s) := [d |
	some a in inv.artifacts
	id := lower(object.get(object.get(a, "license", {}), "id", "unknown"))
	c := by_id[id]
	d := {
		"rule": c.rule,
		"action": c.action,
		"severity": c.severity,
		"subject": {"kind": "artifact", "path": a.path, "sha256": object.get(a, "sha256", null)},
		"message": concat("", [a.path, ": license ", id, c.text]),
	}
] if {
	# classify each distinct license once, not once per artifact
	by_id := {id: c | some id in license_ids(inv); c := verdict(classify(id, s), s)}
}

# What a license rule's decision says, by rule (none for an allowed license).
verdict(rule, s) := {"rule": rule, "action": action(rule, s), "severity": severity(rule, s), "text": texts[rule]}

# The distinct license ids of the inventory, lower-cased. modelward's engine hands in the distinct
# raw ids as input.precomputed.license_ids (rego-cpp builds a set over 10,000 artifacts slowly).
license_ids(inv) := ids if {
	raw := inv.precomputed.license_ids
	ids := {lower(v) | some v in raw}
}

license_ids(inv) := ids if {
	not inv.precomputed
	ids := {lower(object.get(object.get(a, "license", {}), "id", "unknown")) | some a in inv.artifacts}
}

# The license rule an id breaks, if any (the first that applies).
classify(id, s) := "license-denied" if {
	id in s.denied_licenses
} else := "license-allowed" if {
	id in s.allowed_licenses
} else := "license-unknown" if {
	is_unknown(id)
} else := "license-noncommercial" if {
	is_noncommercial(id)
} else := "license-not-allowed" if {
	count(s.allowed_licenses) > 0
}

texts := {
	"license-denied": " is denied by the settings",
	"license-unknown": ": nobody can tell whether the model may be used",
	"license-noncommercial": " forbids commercial use",
	"license-not-allowed": " is not in allowed_licenses",
}

action(rule, s) := "deny" if rule == "license-denied"

action(rule, s) := lib.license_action(s.commercial) if rule != "license-denied"

severity(rule, s) := "high" if rule == "license-denied"

severity(rule, s) := lib.license_severity(s.commercial) if rule != "license-denied"

is_unknown(id) if id in {"unknown", "", "null"}

is_noncommercial(id) if startswith(id, "cc-by-nc")

is_noncommercial(id) if id in {"mrl", "research", "fair-noncommercial-research-license", "deepfloyd-if-license", "apple-ascl"}

is_noncommercial(id) if contains(id, "noncommercial")

is_noncommercial(id) if contains(id, "non-commercial")
