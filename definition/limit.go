package definition

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Limits on a definition file's shape. HCL's parser and evaluator recurse
// once per level of nesting, so a file nested a few hundred thousand levels
// deep would overflow the stack and end the process; no real definition
// comes near these numbers.
const (
	// MaxFileSize is the largest definition or variable file read.
	MaxFileSize = 1 << 20
	// MaxNesting is the deepest nesting of brackets, braces, parentheses,
	// quotes and template sequences.
	MaxNesting = 64
	// MaxOperatorRun is the longest run of operators in a row (!!!!x).
	MaxOperatorRun = 64
	// MaxOperators is the most operators one file may hold: each binary
	// operator nests the expression tree one level deeper.
	MaxOperators = 10000
)

// checkShape lexes src (the lexer does not recurse) and reports a file
// too large or nested too deeply to parse safely.
func checkShape(src []byte, filename string) *hcl.Diagnostic {
	start := hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}
	if len(src) > MaxFileSize {
		return rangeError(start, "File too large",
			fmt.Sprintf("%s is %d bytes; definition and variable files may be at most %d bytes: split it into several files.", filename, len(src), MaxFileSize))
	}
	tokens, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	depth, run, ops := 0, 0, 0
	for _, tok := range tokens {
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl,
			hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
			depth++
			if depth > MaxNesting {
				return rangeError(tok.Range, "Nested too deeply",
					fmt.Sprintf("brackets, braces, quotes and templates nest more than %d levels deep here; flatten the expression or move parts into locals.", MaxNesting))
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen,
			hclsyntax.TokenTemplateSeqEnd, hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc:
			if depth > 0 {
				depth--
			}
		}
		if isOperator(tok.Type) {
			run++
			ops++
			if run > MaxOperatorRun || ops > MaxOperators {
				return rangeError(tok.Range, "Expression too complex",
					fmt.Sprintf("this file has more than %d operators, or more than %d in a row; simplify the expressions or move parts into locals.", MaxOperators, MaxOperatorRun))
			}
		} else if tok.Type != hclsyntax.TokenNewline {
			run = 0
		}
	}
	return nil
}

func isOperator(t hclsyntax.TokenType) bool {
	switch t {
	case hclsyntax.TokenBang, hclsyntax.TokenMinus, hclsyntax.TokenPlus, hclsyntax.TokenStar,
		hclsyntax.TokenSlash, hclsyntax.TokenPercent, hclsyntax.TokenAnd, hclsyntax.TokenOr,
		hclsyntax.TokenEqualOp, hclsyntax.TokenNotEqual, hclsyntax.TokenLessThan,
		hclsyntax.TokenLessThanEq, hclsyntax.TokenGreaterThan, hclsyntax.TokenGreaterThanEq,
		hclsyntax.TokenQuestion, hclsyntax.TokenDot, hclsyntax.TokenEllipsis:
		return true
	}
	return false
}
