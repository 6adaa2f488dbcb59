# unapproved-model: once the organisation keeps an approved list (settings.approved_sha256 or
# settings.approved_origins is not empty), an artifact approved by neither its digest nor its
# origin (Hugging Face repo or model name; "prefix*" globs) warns: it did not come through the
# internal hub. With both lists empty the rule is off.
package modelward.rules.unapproved_model

import data.modelward.lib
import rego.v1

decisions := check(input, data.modelward.settings)

check(inv, s) := [d |
	some a in unapproved(inv, s)
	d := {
		"rule": "unapproved-model",
		"action": "warn",
		"severity": "low",
		"subject": {"kind": "artifact", "path": a.path, "sha256": object.get(a, "sha256", null)},
		"message": concat("", [a.path, ": not approved by the hub (neither its digest nor its origin is on the approved lists)"]),
	}
] if {
	count(s.approved_sha256) + count(s.approved_origins) > 0
} else := []

# The artifacts approved by neither list. With modelward's precomputed facts (input.precomputed)
# the answers of lib.digest_approved and lib.origin_approved are read inline: in rego-cpp two
# function calls per artifact cost more than the rest of the rule.
unapproved(inv, s) := [a |
	some a in inv.artifacts
	not a.precomputed.digest_approved == true
	not a.precomputed.origin_approved == true
] if {
	inv.precomputed
} else := [a |
	some a in inv.artifacts
	not lib.digest_approved(a, s)
	not lib.origin_approved(a, s)
]
