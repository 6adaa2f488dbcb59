package modelward.rules.formats_test

import data.modelward.lib_test as t
import data.modelward.rules.formats
import rego.v1

test_format_not_allowed if {
	ds := formats.check(t.inventory([t.artifact({"format": "onnx"})]), t.settings({"allowed_formats": ["safetensors"]}))
	ds[0].rule == "format-not-allowed"
}

test_any_format_by_default if {
	count(formats.check(t.inventory([t.artifact({"format": "onnx"})]), t.settings({}))) == 0
}
