package httpapi

import (
	"fmt"
	"unicode/utf8"
)

// A strict RFC 8259 parser for request bodies. encoding/json is not used for the first pass
// because the contract needs things it does not give: invalid UTF-8 inside strings must be a
// syntax error (encoding/json silently replaces it), members must be seen in document order
// with their raw number literals (to tell 1e400 — valid JSON, out of float32 range — from a
// syntax error), and a deeply nested body must be a 422, not a recursion-depth failure.
//
// Values are built only as deep as the contract looks (body → instances → instance → feature);
// deeper containers are validated iteratively and kept as their kind alone. Nesting deeper than
// maxNesting is a syntax error (400), as CONTRACT.md fixes for "nesting too deep to parse".

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

type jsonValue struct {
	kind    kind
	number  []byte       // kindNumber: the literal, a sub-slice of the body
	members []jsonMember // kindObject within keepDepth: members in document order, duplicates kept
	items   []jsonValue  // kindArray within keepDepth
}

type jsonMember struct {
	key   string
	value jsonValue
}

// keepDepth: containers nested deeper than this (body=0, instances=1, instance=2) are only
// validated. A feature value is at depth 1 (predict) or 3 (batch) and only its kind matters.
const keepDepth = 3

// maxNesting bounds arrays/objects inside each other. The Python services fail at their
// recursion limit (about 1000 levels, less the interpreter's current stack); 512 is a round
// limit safely below it, so any depth that Python rejects is rejected here too.
const maxNesting = 512

type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string {
	if e.offset < 0 {
		return e.msg
	}
	return fmt.Sprintf("%s at byte %d", e.msg, e.offset)
}

type parser struct {
	data []byte
	pos  int
}

// parseJSON parses exactly one JSON text (optional whitespace around one value).
func parseJSON(data []byte) (jsonValue, error) {
	p := parser{data: data}
	p.skipSpace()
	if p.pos == len(data) {
		if len(data) == 0 {
			return jsonValue{}, &syntaxError{-1, "the body is empty"}
		}
		return jsonValue{}, p.errorf("no JSON value, only whitespace")
	}
	v, err := p.value(0)
	if err != nil {
		return jsonValue{}, err
	}
	p.skipSpace()
	if p.pos != len(data) {
		return jsonValue{}, p.errorf("unexpected %s after the JSON value", p.describe())
	}
	return v, nil
}

func (p *parser) errorf(format string, args ...any) error {
	return &syntaxError{p.pos, fmt.Sprintf(format, args...)}
}

// describe names the byte at p.pos for an error message.
func (p *parser) describe() string {
	if p.pos >= len(p.data) {
		return "end of body"
	}
	c := p.data[p.pos]
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("character %q", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (jsonValue, error) {
	if p.pos >= len(p.data) {
		return jsonValue{}, p.errorf("unexpected end of body, expected a value")
	}
	switch c := p.data[p.pos]; {
	case c == '{' || c == '[':
		if depth >= keepDepth {
			return p.skipContainer(depth)
		}
		if c == '{' {
			return p.object(depth)
		}
		return p.array(depth)
	case c == '"':
		_, err := p.str(false)
		return jsonValue{kind: kindString}, err
	case c == 't':
		return jsonValue{kind: kindBool}, p.literal("true")
	case c == 'f':
		return jsonValue{kind: kindBool}, p.literal("false")
	case c == 'n':
		return jsonValue{kind: kindNull}, p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		number, err := p.number()
		return jsonValue{kind: kindNumber, number: number}, err
	default:
		// NaN, Infinity, single quotes, a BOM… are all here.
		return jsonValue{}, p.errorf("unexpected %s, expected a value", p.describe())
	}
}

func (p *parser) object(depth int) (jsonValue, error) {
	v := jsonValue{kind: kindObject}
	p.pos++ // {
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		key, err := p.memberKey()
		if err != nil {
			return v, err
		}
		member, err := p.value(depth + 1)
		if err != nil {
			return v, err
		}
		v.members = append(v.members, jsonMember{key, member})
		if done, err := p.next('}'); done || err != nil {
			return v, err
		}
	}
}

func (p *parser) array(depth int) (jsonValue, error) {
	v := jsonValue{kind: kindArray}
	p.pos++ // [
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		p.skipSpace()
		item, err := p.value(depth + 1)
		if err != nil {
			return v, err
		}
		v.items = append(v.items, item)
		if done, err := p.next(']'); done || err != nil {
			return v, err
		}
	}
}

// memberKey reads `"key" :` (with surrounding whitespace) and leaves p at the value.
func (p *parser) memberKey() (string, error) {
	p.skipSpace()
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return "", p.errorf("unexpected %s, expected a member name in double quotes", p.describe())
	}
	key, err := p.str(true)
	if err != nil {
		return "", err
	}
	p.skipSpace()
	if p.pos >= len(p.data) || p.data[p.pos] != ':' {
		return "", p.errorf("unexpected %s, expected ':'", p.describe())
	}
	p.pos++
	p.skipSpace()
	return key, nil
}

// next consumes the ',' or the closing bracket after a member or item.
func (p *parser) next(closing byte) (done bool, err error) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return false, p.errorf("unexpected end of body, expected ',' or '%c'", closing)
	}
	switch p.data[p.pos] {
	case ',':
		p.pos++
		return false, nil
	case closing:
		p.pos++
		return true, nil
	}
	return false, p.errorf("unexpected %s, expected ',' or '%c'", p.describe(), closing)
}

// skipContainer validates one object or array without recursion or allocation per level
// beyond one byte of stack.
func (p *parser) skipContainer(depth int) (jsonValue, error) {
	result := jsonValue{kind: kindObject}
	if p.data[p.pos] == '[' {
		result.kind = kindArray
	}
	var stack []byte // the closing bracket of each open container
	open := func() error {
		if depth+len(stack) >= maxNesting {
			return p.errorf("arrays and objects nested more than %d deep", maxNesting)
		}
		if p.data[p.pos] == '{' {
			stack = append(stack, '}')
		} else {
			stack = append(stack, ']')
		}
		p.pos++
		return nil
	}
	if err := open(); err != nil {
		return result, err
	}
	justOpened := true
	for len(stack) > 0 {
		closing := stack[len(stack)-1]
		p.skipSpace()
		if justOpened && p.pos < len(p.data) && p.data[p.pos] == closing {
			p.pos++
			stack = stack[:len(stack)-1]
			justOpened = false
			continue
		}
		if !justOpened {
			done, err := p.next(closing)
			if err != nil {
				return result, err
			}
			if done {
				stack = stack[:len(stack)-1]
				continue
			}
		}
		justOpened = false
		if closing == '}' {
			if _, err := p.memberKey(); err != nil {
				return result, err
			}
		}
		p.skipSpace()
		if p.pos < len(p.data) && (p.data[p.pos] == '{' || p.data[p.pos] == '[') {
			if err := open(); err != nil {
				return result, err
			}
			justOpened = true
			continue
		}
		if _, err := p.value(keepDepth); err != nil { // a scalar: never recurses
			return result, err
		}
	}
	return result, nil
}

func (p *parser) literal(word string) error {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return p.errorf("invalid literal, expected %s", word)
	}
	p.pos += len(word)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and returns the literal.
func (p *parser) number() ([]byte, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.data) && p.data[p.pos] == '0':
		p.pos++
	case p.digits() == 0:
		return nil, p.errorf("invalid number, expected a digit")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if p.digits() == 0 {
			return nil, p.errorf("invalid number, expected a digit after '.'")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return nil, p.errorf("invalid number, expected a digit in the exponent")
		}
	}
	return p.data[start:p.pos], nil
}

func (p *parser) digits() int {
	start := p.pos
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
	}
	return p.pos - start
}

// str reads a string starting at its opening quote; with decode it returns the content
// (escapes resolved; a lone UTF-16 surrogate escape becomes U+FFFD, as in encoding/json).
func (p *parser) str(decode bool) (string, error) {
	p.pos++ // opening quote
	start := p.pos
	var out []byte // only allocated once an escape is met while decoding
	escaped := false
	for {
		if p.pos >= len(p.data) {
			return "", p.errorf("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !decode {
				return "", nil
			}
			if !escaped {
				return string(p.data[start : p.pos-1]), nil
			}
			return string(out), nil
		case c == '\\':
			if decode && !escaped {
				out = append(out, p.data[start:p.pos]...)
				escaped = true
			}
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			if decode {
				out = utf8.AppendRune(out, r)
			}
		case c < 0x20:
			return "", p.errorf("control character 0x%02x in string, expected it escaped", c)
		case c < utf8.RuneSelf:
			if escaped {
				out = append(out, c)
			}
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && size == 1 {
				return "", p.errorf("invalid UTF-8 in string")
			}
			if escaped {
				out = append(out, p.data[p.pos:p.pos+size]...)
			}
			p.pos += size
		}
	}
}

// escape reads one escape sequence at p.pos (the backslash) and returns the rune.
func (p *parser) escape() (rune, error) {
	if p.pos+1 >= len(p.data) {
		return 0, p.errorf("unterminated escape sequence")
	}
	c := p.data[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, err := p.hex4()
		if err != nil {
			return 0, err
		}
		if r >= 0xD800 && r < 0xDC00 && p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
			save := p.pos
			p.pos += 2
			low, err := p.hex4()
			if err != nil {
				return 0, err
			}
			if low >= 0xDC00 && low < 0xE000 {
				return 0x10000 + (r-0xD800)<<10 + (low - 0xDC00), nil
			}
			p.pos = save // not a pair: the second escape is read on its own
		}
		if r >= 0xD800 && r < 0xE000 {
			return utf8.RuneError, nil
		}
		return r, nil
	}
	p.pos -= 2
	return 0, p.errorf("invalid escape sequence")
}

func (p *parser) hex4() (rune, error) {
	if len(p.data)-p.pos < 4 {
		return 0, p.errorf("invalid \\u escape, expected 4 hex digits")
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, p.errorf("invalid \\u escape, expected 4 hex digits")
		}
	}
	p.pos += 4
	return r, nil
}
