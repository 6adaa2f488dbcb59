# unapproved-pickle: a pickle-based model (pickle, PyTorch, TorchScript, joblib ...) whose SHA-256
# is not in settings.approved_sha256 is denied. Loading a pickle runs whatever code it names, and
# scanners can be bypassed: only files the organisation has vetted, by digest, may be pickles.
package modelward.rules.unapproved_pickle

import data.modelward.lib
import rego.v1

decisions := check(input, data.modelward.settings)

check(inv, s) := [d |
	some a in inv.artifacts
	lib.is_pickle_format[a.format]
	not lib.digest_approved(a, s)
	d := {
		"rule": "unapproved-pickle",
		"action": "deny",
		"severity": "high",
		"subject": {"kind": "artifact", "path": a.path, "sha256": object.get(a, "sha256", null)},
		"message": concat("", [a.path, ": ", a.format, " model (pickle-based) not in approved_sha256: convert it to safetensors or approve its digest"]),
	}
]
