# unapproved-model: once the organisation keeps an approved list (settings.approved_sha256 or
# settings.approved_origins is not empty), an artifact approved by neither its digest nor its
# origin (Hugging Face repo or model name; "prefix*" globs) warns: it did not come through the
# internal hub. With both lists empty the rule is off.
package modelward.rules.unapproved_model

import data.modelward.lib
import rego.v1

decisions := check(input, data.modelward.settings)

check(inv, s) := ds if {
	count(s.approved_sha256) + count(s.approved_origins) > 0
	digests := {h | some h in s.approved_sha256}
	exact := {o | some o in s.approved_origins; not endswith(o, "*")}
	prefixes := [trim_suffix(o, "*") | some o in s.approved_origins; endswith(o, "*")]

	# no set comprehension over the artifacts: rego-cpp builds large sets slowly
	ds := [d |
		some a in inv.artifacts
		not object.get(a, "sha256", null) in digests
		origins := lib.origins(a)
		count([v | some v in origins; v in exact]) == 0
		count([v | some v in origins; some p in prefixes; startswith(v, p)]) == 0
		d := {
			"rule": "unapproved-model",
			"action": "warn",
			"severity": "low",
			"subject": lib.artifact(a),
			"message": concat("", [a.path, ": not approved by the hub (neither its digest nor its origin is on the approved lists)"]),
		}
	]
} else := []
