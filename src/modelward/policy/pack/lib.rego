# Helpers shared by the rule families of the modelward default policy pack.
# (Messages are built with concat: rego-cpp 1.5 sometimes renders a computed string with its
# quotes, unescaped, in sprintf.)
#
# The pack reads its settings from data.modelward.settings (modelward fills in every key with its
# default) and the modelward.inventory/v1 document from input. Each family is a function of
# (inventory, settings) so that its _test.rego can call it with literal documents; the family's
# `decisions` rule applies it to input. Decisions are arrays: rego-cpp builds large sets slowly.
package modelward.lib

import rego.v1

# Severity labels in order, and their ranks.
severities := ["info", "low", "medium", "high", "critical"]

rank := {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

# Formats whose loading runs pickle (arbitrary code) in the loader.
pickle_formats := {
	"pickle", "pytorch", "pytorch-legacy", "pytorch-zip", "torchscript",
	"joblib", "dill", "cloudpickle",
}

# The same formats as an object: a lookup (rego-cpp scans a set, and rebuilds a set literal each time).
is_pickle_format := {f: true | some f in pickle_formats}

# The decision subject for an artifact of the inventory. The rules over the inventory's artifacts
# build this object inline: in rego-cpp a function call per decision costs as much as the decision.
artifact(a) := {"kind": "artifact", "path": a.path, "sha256": object.get(a, "sha256", null)}

# The decision subject for a runtime.
runtime(r) := {"kind": "runtime", "name": r.name}

# Pre-computed facts. rego-cpp matches strings against sets and globs slowly (a set is scanned, not
# hashed), so modelward's engine hands the answers of the two functions below for the settings in
# use: an artifact gets an object `precomputed` with the true ones ({"digest_approved": true,
# "origin_approved": true}; no object when neither is true), and the document an object
# `precomputed` (see license.rego). When input.precomputed is there, the rules over all artifacts
# read the facts inline (a function call per artifact is costly in rego-cpp): a missing fact is
# false. Without it (plain `opa eval`, `opa test`) the same answers are computed here in Rego.

# An artifact whose SHA-256 is on the approved list.
digest_approved(a, s) if a.precomputed.digest_approved == true

digest_approved(a, s) if {
	not a.precomputed
	some h in s.approved_sha256
	h == object.get(a, "sha256", null)
}

# An artifact whose hub repo or model name matches an approved origin ("prefix*" globs allowed).
origin_approved(a, s) if a.precomputed.origin_approved == true

origin_approved(a, s) if {
	not a.precomputed
	some o in s.approved_origins
	some v in origins(a)
	origin_match(o, v)
}

origins(a) := [v |
	some k in ["repo", "name"]
	v := object.get(object.get(a, "source", {}), k, null)
	is_string(v)
]

origin_match(o, v) if o == v

origin_match(o, v) if {
	endswith(o, "*")
	startswith(v, trim_suffix(o, "*"))
}

# The action for a license problem: deny for a commercial organisation, else warn.
license_action(true) := "deny"

license_action(false) := "warn"

license_severity(true) := "high"

license_severity(false) := "medium"
