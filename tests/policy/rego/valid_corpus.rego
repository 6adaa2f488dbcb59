# Valid Rego that binds variables in every way the language allows: tests/policy/test_lint.py
# checks that modelward's unsafe-variable check refuses none of it.
package modelward.x

import data.modelward.lib as l
import rego.v1

default allow := false

allow if {
	input.a == 1
}

m[k] := v if {
	some k, v in input.obj
}

s contains x if {
	some x in input.xs
	x > 1
}

f(a, b) := a + b

g(x) := y if {
	y := x * 2
} else := 0

every_ok if {
	every x in input.xs {
		x > 0
	}
}

arr if {
	[a, b] := input.pair
	a == b
}

obj if {
	{"k": v} := input.o
	v == 1
}

idx if {
	input.xs[i] == 1
	i > 0
}

comp := [y | some x in input.xs; y := x + 1]

objc := {k: v | some k, v in input.o}

w if {
	count(input.xs) > 0 with input as {"xs": [1]}
}

t if {
	x := time.now_ns()
	x > 0
}

u if strings.any_prefix_match("a", ["a"])

deny contains msg if {
	some a in input.artifacts
	msg := sprintf("%s", [a.path])
}

q if input.xs[_] == 1

r if {
	some i
	input.xs[i] == 2
}

nested if {
	x := {"a": [1, 2]}
	x.a[j] == 2
	j >= 0
}

unif if {
	x = 5
	x == 5
}

notin if not 3 in input.xs

lib_use if l.rank.high > 1

uses_rule if allow

multi := `raw
string with x y z`

decisions := [d |
	some a in input.artifacts
	d := {
		"rule": "r", "action": "warn", "severity": "low", "message": "m",
		"subject": {"kind": "artifact", "path": a.path},
	}
]
