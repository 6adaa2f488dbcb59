# More valid Rego (output arguments, with, patterns after some, a brace on its own line, ref
# heads, multi-definition functions, else chains): none of it may be called unsafe.
package modelward.y

import rego.v1

paths contains path if {
	walk(input, [path, value])
	value == 1
}

n_ok if {
	count(input.xs, n)
	n > 0
}

mycount(x) := 7

r if {
	inner == 7 with count as mycount
}

inner := count([1])

t if {
	x := time.now_ns() with time.now_ns as 7
	x == 7
}

kv if {
	some k, {"a": v} in input.obj
	v == k
}

pat if {
	some {"x": v} in input.list
	v == 1
}

deny contains msg if
{
	some a in input.artifacts
	msg := a.path
}

a.b.c := 1

multi(1) := "one"

multi(2) := "two"

chain := x if {
	x := 1
} else := y if {
	y := 2
} else := 3

nested := [[y | some y in xs] | some xs in input.lists]

# a rule's body on the line after its head (no braces), and `if` on its own line
next_line contains x if
	some x in input.xs

head_then_if := x
if { x := 1 }

plus_one(x) := y if
	y := x + 1

uses_plus_one := plus_one(1)
