# unapproved-pickle: a pickle-based model (pickle, PyTorch, TorchScript, joblib ...) whose SHA-256
# is not in settings.approved_sha256 is denied. Loading a pickle runs whatever code it names, and
# scanners can be bypassed: only files the organisation has vetted, by digest, may be pickles.
package modelward.rules.unapproved_pickle

import data.modelward.lib
import rego.v1

decisions := check(input, data.modelward.settings)

check(inv, s) := [d |
	some a in unapproved(inv, s)
	d := {
		"rule": "unapproved-pickle",
		"action": "deny",
		"severity": "high",
		"subject": {"kind": "artifact", "path": a.path, "sha256": object.get(a, "sha256", null)},
		"message": concat("", [a.path, ": ", a.format, " model (pickle-based) not in approved_sha256: convert it to safetensors or approve its digest"]),
	}
]

# The pickle-based artifacts whose digest is not approved. With modelward's precomputed facts
# (input.precomputed) the answer of lib.digest_approved is read inline: in rego-cpp a function
# call per artifact costs more than the rest of the rule.
unapproved(inv, s) := [a |
	some a in inv.artifacts
	lib.is_pickle_format[a.format]
	not a.precomputed.digest_approved == true
] if {
	inv.precomputed
} else := [a |
	some a in inv.artifacts
	lib.is_pickle_format[a.format]
	not lib.digest_approved(a, s)
]
