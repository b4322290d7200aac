r"""LaTeX or ASCII expression text -> :class:`~matderiv.expr.Expr` tree with source spans.

Owns the surface syntax of SPEC 1.1: a hand-written tokenizer (context-dependent LaTeX
pieces) feeding a Lark LALR(1) parser (``grammar.lark``), then a conversion of the parse tree
into :mod:`matderiv.expr` nodes.  Knows nothing of sizes (see :mod:`matderiv.shapes`), of
differentiation or of documents.  Never evaluates anything: the text is only tokenized.

Reading rules (the decisions where LaTeX is ambiguous)
------------------------------------------------------
* **Symbols** are one Latin or Greek letter with an optional subscript, so ``Xu`` is ``X u``.
  ``\mathbf{x}``, ``\bm{x}``, ``\boldsymbol{x}`` name the symbol ``x`` and print bold
  (Latin as ``\mathbf``, Greek as ``\boldsymbol``); ``W_{2}`` prints ``W_2``.  When a name is
  written both bold and plain in one expression, the first spelling prints and bold decides
  the default kind.  Default kinds: uppercase (Latin or Greek) -> matrix; lowercase Latin ->
  vector; bold lowercase Greek -> vector; plain lowercase Greek -> scalar.
* ``I`` / ``\mathbf{I}`` / ``I_n`` is the identity; ``\mathbf{1}`` the ones vector; ``0`` a
  constant zero (shape inference turns it into what the context needs).
* **Functions without brackets** take the next atom *together with its postfix operators*:
  ``\det X^{-1}`` is det(X^{-1}), ``\log x^2`` is log(x^2), ``\log\det X`` is log(det X),
  ``\operatorname{tr} A B`` is tr(A)·B.  With brackets, postfix operators after the closing
  bracket apply to the function value: ``\det(X)^{-1}`` is (det X)^{-1}.
  ``\sin^2(x)`` / ``\tanh^2 x`` are powers of the function value.
* ASCII function words (``exp log ln sin cos tanh sqrt sigmoid softmax diag vec sum tr det
  logdet inv``) are functions only when an opening bracket follows; otherwise the letters
  are symbols (``det`` alone is d·e·t).
* ``\sigma`` directly followed by an opening round bracket (``(``, ``\left(``, ``\big(``, ...)
  is the logistic function, and ``\sigma'(`` (or ``\sigma^\prime(``) its derivative
  sigma(1 - sigma); otherwise it is a scalar symbol (``\sigma^2 I``).
* ``e^{...}`` and ``\mathrm{e}^{...}`` are the exponential; ``e^T``/``e^\top`` (a transpose)
  and ``e`` anywhere else are the ordinary symbol ``e``.
* ``|...|``: a ``|`` closes the innermost open bar when the previous token ends an operand,
  and opens a new one otherwise, so ``|a|\,|b|`` is two bars.  The parser produces
  ``Func("bars", X)``; shape inference makes it ``Det`` (square matrix) or ``abs`` (scalar).
  ``\|...\|`` is read the same way; ``\left|``/``\right|`` and ``\lVert``/``\rVert`` are
  unambiguous.
* Norms: ``\|x\|`` and ``\|x\|_2`` give ``Norm(x, "2")``, ``\|x\|_1`` ``Norm(x, "1")``,
  ``\|X\|_F`` ``Norm(X, "F")``; an
  unsubscripted norm of a *matrix* is read as the Frobenius norm (done by shape inference).
* ``\operatorname{diag}(.)`` gives ``Func("diag", .)``; inference makes it ``Diag`` for a
  vector and ``DiagPart`` for a square matrix.
* Superscripts: ``^T ^{T} ^\top ^{\top} ^{\mathsf T} ^\mathrm{T} ^\intercal ^{'}`` and postfix
  ``'`` are the transpose; ``^{-1}``/``^-1`` the inverse; ``^{-T}``/``^{-\top}`` the inverse
  transpose; anything else a power.  ``^`` followed by digits takes the whole number (``x^10``).
* Precedence (loosest first): ``+ -``; unary minus; ``\odot \circ .* \otimes \oslash``;
  products (juxtaposition, ``\cdot``, ``*``, ``\times``, ``/``, left to right); postfix;
  atoms.  ``/`` divides by the following factor; ``a/b c``, which readers take either way, is
  refused as ambiguous (``a / b \cdot c`` is (a/b)·c).
* Brackets ``() [] \{\}`` with ``\left``/``\right`` and ``\big``-family sizes group; ``{}``
  groups too.  ``\, \; \: \! \quad \qquad ~`` are ignored.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from ..deadline import tick
from ..errors import MatDerivError, NestedTooDeeplyError, Span, UnsupportedError
from ..expr import (ELEMENTWISE, Add, Const, Det, Expr, Func, Hadamard, HadamardDiv, Identity,
                    Inverse, Kron, Mul, Norm, Ones, Power, Softmax, Sum, Symbol, Trace, Transpose,
                    UNKNOWN, Vec)

__all__ = ["Parsed", "parse", "normalize_name", "GREEK"]

# ------------------------------------------------------------------------------------------
# Vocabulary
# ------------------------------------------------------------------------------------------
GREEK_LOWER = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa "
               "varkappa lambda mu nu xi pi varpi rho varrho sigma varsigma tau upsilon phi "
               "varphi chi psi omega").split()
GREEK_UPPER = ("Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega varGamma varDelta "
               "varTheta varLambda varXi varPi varSigma varUpsilon varPhi varPsi "
               "varOmega").split()
GREEK = frozenset(GREEK_LOWER + GREEK_UPPER)

UNICODE_GREEK = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta",
    "η": "eta", "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu",
    "ξ": "xi", "π": "pi", "ρ": "rho", "σ": "sigma", "τ": "tau", "υ": "upsilon", "φ": "phi",
    "χ": "chi", "ψ": "psi", "ω": "omega", "Γ": "Gamma", "Δ": "Delta", "Θ": "Theta",
    "Λ": "Lambda", "Ξ": "Xi", "Π": "Pi", "Σ": "Sigma", "Υ": "Upsilon", "Φ": "Phi", "Ψ": "Psi",
    "Ω": "Omega",
}

#: Canonical function names (the FUNC token value) by spelling.
FUNC_NAMES = {
    "exp": "exp", "log": "log", "ln": "log", "sin": "sin", "cos": "cos", "tanh": "tanh",
    "sinh": "sinh", "cosh": "cosh", "tan": "tan", "arctan": "arctan",
    "sqrt": "sqrt", "sigmoid": "sigmoid", "softmax": "softmax", "diag": "diag", "vec": "vec",
    "sum": "sum", "tr": "tr", "Tr": "tr", "trace": "tr", "det": "det", "logdet": "logdet",
    "inv": "inv", "abs": "abs", "sign": "sign", "sgn": "sign", "Diag": "diag",
    "logsumexp": "logsumexp", "LSE": "logsumexp", "lse": "logsumexp",
    "logistic": "sigmoid", "softplus": "softplus",
}
#: LaTeX commands that are functions (``\exp`` ...).
FUNC_COMMANDS = {
    "exp": "exp", "log": "log", "ln": "log", "sin": "sin", "cos": "cos", "tanh": "tanh",
    "sinh": "sinh", "cosh": "cosh", "tan": "tan", "arctan": "arctan",
    "sqrt": "sqrt", "det": "det", "tr": "tr", "Tr": "tr", "trace": "tr", "diag": "diag",
    "logdet": "logdet", "softmax": "softmax", "sigmoid": "sigmoid", "softplus": "softplus",
    # common user macros (\newcommand{\inv}..., mathtools' \abs)
    "inv": "inv", "sign": "sign", "sgn": "sign", "abs": "abs",
}
#: An opening bracket of a call, round (``(``, ``\left(``, ``\big(``, ...) or also square.
_ROUND_OPEN = r"(?:\(|\\left\s*\(|\\[bB]igg?l?\s*\()"
_OPEN = r"(?:\(|\[|\\left\s*[(\[]|\\[bB]igg?l?\s*[(\[])"
ASCII_FUNC_RE = re.compile(
    r"(logsumexp|logistic|logdet|softmax|softplus|sigmoid|arctan|trace|sign|tanh|sinh|cosh|sqrt|diag|exp|log|sin|cos|tan|vec"
    r"|sum|det|inv|abs|sgn|ln|tr|Tr)"
    r"(?=\s*" + _OPEN + ")")

#: The base of a logarithm, ``\log_2``, ``\log_{10}``.
LOG_BASE_RE = re.compile(r"\s*_\s*(?:\{[^{}]*\}|[0-9A-Za-z])")

#: A run of letters that may spell a Greek letter's name (``tau``, ``Sigma``).
ASCII_GREEK_RE = re.compile(r"[A-Za-z]+")
#: A word of three or more lowercase letters written as a call (``norm(x)``).
ASCII_WORD_CALL_RE = re.compile(r"([a-z]{3,}[0-9]?)(?=\s*\()")

#: what follows ``\sum`` when it is a function of one bracketed argument (no limits)
SUM_CALL_RE = re.compile(r"\s*" + _OPEN)

#: An elementwise (Hadamard) power, ``x^{\circ 2}`` or ``X^{\odot 3}``: group 1 is the exponent.
HADPOW_RE = re.compile(r"\^\s*\{\s*\\(?:circ|odot)(?![A-Za-z])((?:[^{}]|\{[^{}]*\})*)\}")
#: The elementwise power as MATLAB and matrixcalculus.org write it: ``x.^2``, ``x.^{1/2}``.
DOTPOW_RE = re.compile(r"\.\^\s*(?:\{([^{}]*)\}|\(([^()]*)\)|([0-9]*\.?[0-9]+))")

#: The spaces an author types on purpose (not ``\!``, which pulls factors together).
_VISIBLE_SPACE = r"~|\\[,;:> ]|\\q?quad(?![A-Za-z])"
EXPLICIT_SPACE_RE = re.compile(_VISIBLE_SPACE + r"|\\hspace\*?\s*\{\s*[^-\s{}]")

#: Spacing: blanks, TeX's spaces, \mkern-2mu and \hspace{...}, and style switches.
SPACE_RE = re.compile(r"(?:\s|\\!|" + _VISIBLE_SPACE + r"|\\(?:display|text|script|scriptscript)style"
                      r"(?![A-Za-z])|\\(?:mkern|mskip|kern)\s*-?[\d.]+\s*(?:mu|em|ex|pt)"
                      r"|\\hspace\*?\s*\{[^{}]*\})+")
#: What follows the backslash of a command SPACE_RE takes (``\,`` ``\!`` ``\quad``
#: ``\displaystyle`` ``\mkern`` ``\kern`` ``\hspace`` ...): other commands are not tried.
_SPACING_COMMANDS = "!,;:> qdtsmkh"
_SP = (r"(?:\s|~|\\[,;:! ]|\\mkern\s*-?[\d.]+\s*mu"
       r"|\\(?:scriptscript|script|text|display)style(?![A-Za-z]))*")  # (x^{\scriptscriptstyle\top})
#: The transpose as papers' own macros spell it: ``x^\T``, ``x^\transpose`` (``\T`` defined as
#: ``\top``, or as ``^\top`` and written ``x\T``).
TRANSPOSE_MACROS = ("T", "transpose", "trans")
_TRANSPOSE_MACRO = r"\\(?:" + "|".join(TRANSPOSE_MACROS) + r")(?![A-Za-z])"
# (over the reals the conjugate transpose, A^H or A^{\mathsf H}, is the transpose)
_T = (r"(?:[TH]|\\top(?![A-Za-z])|\\prime(?![A-Za-z])|\\intercal(?![A-Za-z])"
      r"|" + _TRANSPOSE_MACRO +
      r"|\\(?:mathsf|mathrm|textsf|text)\s*(?:[TH]|\{" + _SP + r"[TH]" + _SP + r"\})"
      r"|\\(?:rm|sf)\s*[TH])")  # (\mathrm{\scriptscriptstyle T}: Biometrika's \T)
TRANSPOSE_RE = re.compile(r"\^\s*(?:[TH]|\\top(?![A-Za-z])|\\prime(?![A-Za-z])"
                          r"|" + _TRANSPOSE_MACRO +
                          r"|\\intercal(?![A-Za-z])|\\(?:mathsf|mathrm|textsf|text)\s*"
                          r"(?:\{" + _SP + r"[TH]" + _SP + r"\}|[TH](?![A-Za-z]))"
                          r"|\{" + _SP + r"(?:" + _T + r"|')" + _SP + r"\})")
INVERSE_RE = re.compile(r"\^\s*(?:\{" + _SP + r"-\s*1" + _SP + r"\}|-\s*1(?![\d.]))")
INVTRANSPOSE_RE = re.compile(r"\^\s*(?:\{" + _SP + r"-\s*" + _T + _SP + r"\}|-\s*T"
                             # X^{\top -1}; not X^{T-1}, a power by T - 1 (a horizon T)
                             r"|\{" + _SP + r"\\(?:top|intercal)(?![A-Za-z])" + _SP
                             + r"-\s*1" + _SP + r"\})")
NUMBER_RE = re.compile(r"(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?")  # 0.5, .5, 1e-3
SUBSCRIPT_RE = re.compile(r"\s*_\s*(?:\{\s*([A-Za-z0-9]+|\\[A-Za-z]+)\s*\}|([A-Za-z0-9])|\\([A-Za-z]+))")
#: The hint of a norm that is not supported.
NORMS_SUPPORTED = ("the 2-norm (\\|x\\|_2), the 1-norm of a vector (\\|x\\|_1) and the Frobenius "
                   "norm (\\|X\\|_F) are supported")
NORMSUB_RE = re.compile(
    r"\s*_\s*(?:\{\s*(?:\\(?:mathrm|text|textrm|operatorname|mathsf)\s*\{\s*([A-Za-z0-9]+)\s*\}"
    r"|\\(?:mathrm|rm)\s*([A-Za-z0-9])|([A-Za-z0-9]+|\\infty|\*))\s*\}"
    r"|\\(?:mathrm|text|textrm|mathsf)\s*\{\s*([A-Za-z0-9]+)\s*\}|([A-Za-z0-9*])|(\\infty))")
#: the size subscript of a printed zero, ``0_{m \times n}`` or ``0_{n^2 \times n^2}`` (dropped: a
#: zero takes the shape its place needs)
ZERO_SUB_RE = re.compile(r"\s*_\s*\{[A-Za-z0-9^\s]*(?:\\times[A-Za-z0-9^\s]*)?\}")
IDENT_POWER_SUB_RE = re.compile(r"\s*_\s*\{\s*(?:[A-Za-z](?:\s*\^\s*\d+)?\s*)+\}"
                                r"|\s*_\s*\{\s*[A-Za-z]\s*\\times\s*[A-Za-z]\s*\}")  # I_{n \times n}
SIGMA_PRIME_RE = re.compile(r"\s*(?:'|\^\s*\{\s*\\prime\s*\}|\^\s*\\prime)")
SQUARED_CALL_RE = re.compile(r"(\s*\^\s*(?:2|\{\s*2\s*\}))\s*" + _ROUND_OPEN)
ROOT_INDEX_RE = re.compile(r"\s*\[([^\]]*)\]")
#: A round bracket after spacing that holds an explicit space (``\sigma\,(``): group 1 the
#: spacing.
SPACED_CALL_RE = re.compile(r"((?:\s|" + _VISIBLE_SPACE + r")+)" + _ROUND_OPEN)
#: Plain TeX's roman function names: ``{\rm tr}`` (group 1 the name), and after ``\rm`` the
#: word it sets.
RM_GROUP_RE = re.compile(r"\{\s*\\rm\s+([A-Za-z]+)\s*\}")
RM_WORD_RE = re.compile(r"\s*([A-Za-z]+)")
#: ``{\bf x}``, ``{\bf 1}``: plain TeX's bold switch in a group, as ``\mathbf{x}``
BF_GROUP_RE = re.compile(r"\{\s*\\bf\s*(\\[A-Za-z]+|[A-Za-z1])\s*\}")
#: An opening round bracket of a call: ``(``, ``\left(``, ``\big(`` ... (``\sigma(``, ``\vec(``);
#: a negative space may stand before it, as authors tighten a call: ``\sigma\!\left(``.
CALL_BRACKET_RE = re.compile(r"(?:\s|\\!|\\mkern\s*-[\d.]+\s*mu)*" + _ROUND_OPEN)
COMMAND_RE = re.compile(r"\\([A-Za-z]+|.)")
ACCENT_ARG_RE = re.compile(r"\\([A-Za-z]+)\s*")
ARG_RE = re.compile(r"\s*(?:\{((?:[^{}]|\{[^{}]*\})*)\}|(\\[A-Za-z]+|[A-Za-z0-9]))")
SIZE_CMDS = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr",
             "biggl", "biggr", "Biggl", "Biggr", "bigm", "Bigm", "biggm", "Biggm"}
BOLD_CMDS = {"mathbf", "boldsymbol", "bm", "mathbb", "pmb", "mathbfit",
             "mathds", "mathbbm"}  # (dsfont's and bbm's \mathds{1}, \mathbbm{1}: the ones vector)
#: Accents that make a symbol of their own: ``\hat{y}`` (a prediction), ``\bar{x}`` (a mean),
#: ``\tilde{x}``, ``\vec{x}``, ...  Each is read as a new symbol, never as an operation on x.
ACCENTS = {"hat", "widehat", "tilde", "widetilde", "bar", "overline", "check", "breve", "dot",
           "ddot", "vec", "acute", "grave", "mathring"}
NAME_CMDS = {"operatorname", "mathrm", "text", "textrm", "mathop", "mathit", "textit", "rm"}
OPERATOR_CMDS = {"cdot": "TIMES", "times": "TIMES", "ast": "TIMES", "odot": "HADAMARD",
                 "circ": "HADAMARD", "otimes": "KRON", "oslash": "OSLASH"}
DELIMS_OPEN = {"(": "(", "[": "[", "\\{": "{", "\\lbrace": "{", "\\lbrack": "[",
               "\\lparen": "("}
DELIMS_CLOSE = {")": "(", "]": "[", "\\}": "{", "\\rbrace": "{", "\\rbrack": "[",
                "\\rparen": "("}
CLOSER_OF = {"(": ")", "[": "]", "{": "\\}", "brace": "}", "|": "|", "||": "\\|",
             "angle": "\\rangle", "norm{": "}"}

#: The delimiters a size command takes, longest first (``\lbrace`` before ``\{``).
_DELIMS_LONGEST_FIRST = tuple(sorted(list(DELIMS_OPEN) + list(DELIMS_CLOSE), key=len,
                                     reverse=True))

#: The opening of ``\norm{x}`` after the command name (mathtools' starred form too).
NORM_CMD_RE = re.compile(r"\s*\*?\s*\{")

#: The Frobenius subscript an inner product of matrices may carry: ``\langle A, X \rangle_F``.
INNER_SUB_RE = re.compile(r"\s*_\s*(?:\{\s*(?:\\mathrm\s*\{?\s*F\s*\}?|F)\s*\}|F(?![A-Za-z]))")

#: Every command the tokenizer knows (for "did you mean" hints).
KNOWN_COMMANDS = sorted(
    set(GREEK) | set(FUNC_COMMANDS) | BOLD_CMDS | NAME_CMDS | SIZE_CMDS | set(OPERATOR_CMDS)
    | ACCENTS | {"frac", "tfrac", "dfrac", "cfrac", "top", "intercal", "mathsf", "lVert", "rVert",
                 "lvert", "rvert", "vert", "Vert", "quad", "qquad", "operatorname",
                 "displaystyle", "textstyle", "scriptstyle", "scriptscriptstyle"})
#: Commands refused inside an expression, with what to write instead.
_NOT_IN_EXPRESSIONS = {
    "sum": "write the expression explicitly; \\sum(x) with no limits, or "
           "\\operatorname{sum}(x), is the sum of the entries of x",
    "prod": "write the product explicitly; a product of the entries of x is "
            "\\exp(\\mathbf{1}^\\top \\log(x)) for positive entries"}
#: ``\sum_i``, ``\sum^n``: a sum over entries, which are not symbols
SUM_LIMITS_RE = re.compile(r"\s*[_^]")
_SUM_WITH_LIMITS_HINT = (
    "entries are not symbols: write the sum in vector form, as \\|y - X w\\|^2 for "
    "\\sum_i (y_i - w^\\top x_i)^2 (the x_i^\\top the rows of X) or "
    "\\mathbf{1}^\\top \\log(\\sigma(X w)) for \\sum_i \\log\\sigma(w^\\top x_i)")
_NOT_IN_EXPRESSIONS.update(dict.fromkeys(
    ("partial", "nabla"), "give the function itself and the variable apart, as in "
    "\\matderiv<x^\\top A x, x>: the macro writes the derivative"))
_NOT_IN_EXPRESSIONS.update(dict.fromkeys(
    ("cdots", "ldots", "dots"), "write the expression without dots, with vectors and matrices "
    "for the lists of entries"))
_NOT_IN_EXPRESSIONS["int"] = "integrals cannot be differentiated here; write the integrand"
# the shorthands of the ICLR and NeurIPS math_commands.tex for what is not a quantity
_NOT_IN_EXPRESSIONS["E"] = ("\\E is the expectation: differentiate the expression inside (the "
                            "derivative of an expectation is the expectation of the derivative)")
_NOT_IN_EXPRESSIONS["R"] = "\\R is the set of real numbers, not a quantity"
_NOT_IN_EXPRESSIONS.update(dict.fromkeys(
    ("Var", "Cov", "KL"), "a statistic or divergence of distributions cannot be "
    "differentiated without its formula; write the expression itself"))
_NOT_IN_EXPRESSIONS["backslash"] = "write the solution of A x = b as A^{-1} b"
_NOT_IN_EXPRESSIONS.update(dict.fromkeys(
    ("mathcal", "mathscr", "mathfrak", "ell"), "a letter in this style names a function or a "
    "set (a loss \\mathcal{L} or \\ell, a distribution \\mathcal{N}), which cannot be "
    "differentiated without its formula; write the expression itself"))

#: Program spellings (NumPy, MATLAB) and what to write instead.
_CODE_HINTS = {
    "@": "write the matrix product side by side (A x) or with \\cdot",
    ".T": "write the transpose as a superscript: x^\\top or x^T",
    "**": "write a power with ^: x^2",
    "#": "`#1` is a parameter of a LaTeX command being defined: matderiv runs on the source, "
         "before TeX, and cannot know what it will be; put the macro where the command is used, "
         "with the argument written out",
    "=": "the expression is a formula, not an equation: write its right-hand side alone "
         "(x^\\top A x, not f(x) = x^\\top A x), and name=f to print \\partial f on the left",
}

#: A pseudo-inverse, ``A^+`` or ``A^{\dagger}``.
PINV_RE = re.compile(r"\^\s*(?:\+|\\dagger(?![A-Za-z])|\{\s*(?:\+|\\dagger(?![A-Za-z]))\s*\})")

#: The arguments of ``\frac`` that make it a derivative: ``\frac{d}{dx}``, ``\frac{d f}{d x}``,
#: ``\frac{\mathrm{d}^2 f}{\mathrm{d} t^2}`` (read after the command name).
_D = r"(?:d|\\mathrm\s*\{\s*d\s*\}|\\mathrm\s*d|\\text\s*\{\s*d\s*\}|\\operatorname\s*\{\s*d\s*\})"
DERIVATIVE_FRAC_RE = re.compile(r"\s*\{\s*" + _D + r"(?![A-Za-z])[^{}]*(?:\{[^{}]*\}[^{}]*)*\}\s*\{\s*" + _D
                                + r"(?![a-zA-Z]{2})")

#: Blackboard letters that are operators, not symbols.
_BLACKBOARD_OPERATORS = {"E": "the expectation", "P": "a probability", "V": "the variance"}
#: Blackboard letters that name a set of numbers, not a quantity: ``\mathbb{R}^n``.
_NUMBER_SETS = {"R": "the real numbers", "C": "the complex numbers", "N": "the natural numbers",
                "Z": "the integers", "Q": "the rational numbers"}

#: Commands that are operators matderiv does not read, with what they usually mean.
_OTHER_OPERATORS = {
    "star": "a convolution",
    "bullet": "a product", "div": "a division", "wedge": "a wedge product",
    "oplus": "a direct sum", "circledast": "a convolution", "mid": "a condition",
}

#: Spellings of function names that hints leave out (another spelling is listed).
_FUNC_ALIASES = frozenset({"Diag", "Tr", "trace", "sgn", "LSE", "lse", "logistic"})

#: What the hint of an unknown command suggests: the function commands the parser takes.
KNOWN_FUNCTIONS = sorted(set(FUNC_COMMANDS) - _FUNC_ALIASES | {"sigma"})
#: The same as a hint lists them, with the operator names that have no command.
_FUNCTIONS_LISTED = (", ".join("\\" + f for f in KNOWN_FUNCTIONS)
                     + ", \\operatorname{vec}, \\operatorname{sum}")

#: LaTeX's other function commands: named as functions we do not differentiate, not as
#: misspellings (``\cosh`` is not a typo of ``\cos``).
_OTHER_LATEX_FUNCTIONS = frozenset({
    "coth", "cot", "sec", "csc", "arcsin", "arccos", "lg",
    "arg", "deg", "dim", "gcd", "hom", "ker", "Pr", "lim", "liminf", "limsup"})

#: Texts longer than this (in characters) poll the time limit at each token, shorter ones
#: once: reading one takes a few tens of microseconds.
_TICK_EACH_TOKEN_PAST = 256

#: The printable ASCII characters that start no spacing (SPACE_RE starts with a blank, `~` or
#: a backslash): at one of them the tokenizer reads a token at once.
_NO_SPACING_STARTS = frozenset(chr(k) for k in range(33, 127)) - {"\\", "~"}

# Token types that end an operand (used to read `|` as an opening or closing bar).
_OPERAND_END = {"SYM", "NUMBER", "IDENT", "ONES", "RPAR", "RBRACE", "RBAR", "RNORM", "NORMSUB",
                "RANGLE",
                "TRANSPOSE", "INVERSE", "INVTRANSPOSE", "PRIME", "EXP_E", "HADPOW"}

HUMAN = {
    "SYM": "a symbol", "NUMBER": "a number", "IDENT": "the identity I", "ONES": "\\mathbf{1}",
    "EXP_E": "e", "FUNC": "a function", "FRAC": "\\frac", "PLUS": "`+`", "MINUS": "`-`",
    "TIMES": "a product sign", "SLASH": "`/`", "HADAMARD": "`\\odot`", "KRON": "`\\otimes`",
    "OSLASH": "`\\oslash`", "TRANSPOSE": "a transpose", "INVERSE": "`^{-1}`",
    "HADPOW": "an elementwise power",
    "INVTRANSPOSE": "`^{-T}`", "PRIME": "`'`", "CARET": "`^`", "LPAR": "an opening bracket",
    "RPAR": "a closing bracket", "LBRACE": "`{`", "RBRACE": "`}`", "LBAR": "`|`",
    "RBAR": "a closing `|`", "LNORM": "`\\|`", "RNORM": "a closing `\\|`",
    "NORMSUB": "a norm subscript", "LANGLE": "`\\langle`", "RANGLE": "`\\rangle`",
    "COMMA": "a comma", "FROB": "`:`", "$END": "the end of the expression",
}
#: Unicode superscript digits, read as powers (``x²``).
_SUPERSCRIPT_DIGITS = {"\u00b2": "2", "\u00b3": "3", "\u2074": "4"}

_POWER_TOKENS = frozenset({"TRANSPOSE", "INVERSE", "INVTRANSPOSE", "PRIME", "HADPOW"})

_OPERAND_START = {"SYM", "NUMBER", "IDENT", "ONES", "EXP_E", "FUNC", "FRAC", "LPAR", "LBRACE",
                  "LBAR", "LNORM", "LANGLE"}


# ------------------------------------------------------------------------------------------
# Result type
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parsed:
    """A parsed expression.  ``spans`` maps ``id(node)`` of every node of ``tree`` to its
    source span in ``source`` (``tree`` is held here, so the ids stay valid)."""

    tree: Expr
    source: str
    spans: dict = field(default_factory=dict, compare=False, repr=False)
    #: every node the parser built (their ids are keys of ``spans``: kept alive, not reused)
    built: list = field(default_factory=list, compare=False, repr=False)
    #: ids of the products written as the bare argument of an elementwise function
    #: (``\sin \tau A``, ``\sin^2 \tau A``): typing decides how much of the product the
    #: function takes
    bare_chains: frozenset = field(default_factory=frozenset, compare=False, repr=False)
    #: ids of the exponentials written ``e^{...}`` (typing refuses one of a square matrix,
    #: which a reader takes for the matrix exponential)
    exp_powers: frozenset = field(default_factory=frozenset, compare=False, repr=False)
    #: ``x(\tau)``, a symbol right before a bracket that holds one symbol: ``(name before,
    #: name inside, start, end, end of the symbol before, start and end of the one inside)``;
    #: typing refuses it when it reads as a function (see ``shapes``), else it is a product
    calls: tuple = field(default=(), compare=False, repr=False)
    #: ids of the reciprocals a division made (``\frac{1}{N}``, ``x / N``): typing refuses one
    #: of a matrix, which no textbook divides by (``N^{-1}`` is its inverse)
    divisions: frozenset = field(default_factory=frozenset, compare=False, repr=False)
    #: ids of the traces an inner product ``\langle u, v \rangle`` was read as, tr(u^T v):
    #: typing drops the trace where u^T v is 1 x 1 (two vectors), so the text reads u^T v
    inner_products: frozenset = field(default_factory=frozenset, compare=False, repr=False)
    #: ``dx``, a plain ``d`` written right against a symbol: ``(name of the symbol, start,
    #: end)``; the derivation refuses it when the symbol is the variable (a differential)
    differentials: tuple = field(default=(), compare=False, repr=False)

    def span(self, node: Expr) -> Span | None:
        return self.spans.get(id(node))

    def text(self, node: Expr) -> str:
        """The source text of ``node`` (empty when it has no span)."""
        sp = self.spans.get(id(node))
        return self.source[sp.start:sp.end] if sp else ""


# ------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------
class _Tok:
    """A token: its terminal name, text, span and (for a symbol) what the symbol is."""

    __slots__ = ("type", "value", "start", "end", "info")

    def __init__(self, type_: str, value: str, start: int, end: int, info=None):
        self.type = type_  # (one by one: a tuple assignment of five builds a tuple)
        self.value = value
        self.start = start
        self.end = end
        self.info = info

    def __repr__(self) -> str:
        return f"_Tok({self.type!r}, {self.value!r}, {self.start}, {self.end})"


class _SymInfo(NamedTuple):
    """What a SYM token is: its plain name, its LaTeX, and how it was written.  (An immutable
    record made for every symbol read: a named tuple costs less to build than a frozen
    dataclass, which sets each field through ``object.__setattr__``.)"""

    name: str
    latex: str
    bold: bool
    upper: bool
    greek: bool


def _err(msg, pos, hint="", end=None, src=None):
    return MatDerivError(msg, pos, hint, end=end, source=src)


def _sym_info(letter: str, greek: bool, bold: bool, sub: str | None,
              label: tuple[str, str] | None = None) -> _SymInfo:
    """``letter`` is a Latin letter or a Greek name (without backslash); ``label`` is a
    superscript index as (index, LaTeX), ``("1", "^{(1)}")`` for the layer index of ``W^{(1)}``."""
    if sub is None and label is None:  # (a plain letter, the commonest: made once, below)
        got = _PLAIN_SYM_INFOS.get((letter, greek, bold))
        if got is not None:
            return got
    return _make_sym_info(letter, greek, bold, sub, label)


def _make_sym_info(letter: str, greek: bool, bold: bool, sub: str | None,
                   label: tuple[str, str] | None) -> _SymInfo:
    """What :func:`_sym_info` returns, computed."""
    base = ("\\" + letter) if greek else letter
    if bold:
        base = ("\\boldsymbol{%s}" if greek else "\\mathbf{%s}") % base
    name = letter
    latex = base
    if sub:
        name += "_" + sub_name(sub)
        latex += "_" + (sub if len(sub) == 1 else "{" + sub + "}")
    if label:  # W^{(1)} is W__1, h^{(l-1)} h__lm1: a name that is also a Python identifier
        name += "__" + label[0].replace("-", "m").replace("+", "p")
        latex += label[1]
    upper = letter[:1].isupper() if not greek else (letter[:1].isupper() or
                                                     letter.startswith("var") and letter[3:4].isupper())
    return _SymInfo(name, latex, bold, upper, greek)


#: The record of every plain letter, Latin or Greek, bold or not (without a subscript or an
#: index), made once: most symbols read are these.
_PLAIN_SYM_INFOS = {(letter, greek, bold): _make_sym_info(letter, greek, bold, None, None)
                    for greek, letters in ((False, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                   "abcdefghijklmnopqrstuvwxyz"), (True, GREEK))
                    for letter in letters for bold in (False, True)}
#: The ASCII letters (a set: one test, where ``c.isascii() and c.isalpha()`` is two calls).
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
#: What makes a letter more than a lone symbol when it follows it: a subscript, a superscript
#: or another ASCII letter (a function's or a Greek letter's name, or a word).
_NOT_AFTER_A_LONE_LETTER = _ASCII_LETTERS | {"_", "^"}
#: The record of each plain Latin letter, by the letter (the commonest symbol of all).
_PLAIN_LETTER_INFOS = {k[0]: v for k, v in _PLAIN_SYM_INFOS.items() if not k[1] and not k[2]}
#: The spelling (LaTeX, bold) of each plain Latin letter (see :attr:`_Tokenizer.spellings`).
_PLAIN_LETTER_SPELLINGS = {c: (info.latex, info.bold) for c, info in _PLAIN_LETTER_INFOS.items()}


def _accent_info(accent: str, inner: str) -> _SymInfo | None:
    """The symbol ``\\<accent>{<inner>}``, or None when ``inner`` is not one plain symbol
    (a letter, a Greek letter, bold or not, with an optional subscript)."""
    try:
        toks = _Tokenizer(inner).run()
    except MatDerivError:
        return None
    if len(toks) != 1 or toks[0].type != "SYM" or "__" in toks[0].info.name:
        return None
    s = toks[0].info
    base, _, sub = s.latex.partition("_")
    latex = f"\\{accent}{{{base}}}" + ("_" + sub if sub else "")
    return _SymInfo(s.name + "__" + accent, latex, s.bold, s.upper, s.greek)


def _with_sub(info: _SymInfo, sub: str) -> _SymInfo:
    """``info`` (an accented symbol without a subscript) with the subscript ``sub`` written
    after its accent: ``\\hat{y}_i`` is y_i__hat, printed ``\\hat{y}_i``."""
    base, _, accent = info.name.partition("__")
    latex = info.latex + "_" + (sub if len(sub) == 1 else "{" + sub + "}")
    return _SymInfo(f"{base}_{sub_name(sub)}__{accent}", latex, info.bold, info.upper,
                    info.greek)


#: A superscript that indexes a symbol rather than raising it to a power: ``W^{(1)}``,
#: ``a^{[l]}``, ``x^{<t>}``, ``x^{\langle t \rangle}`` (layers, samples, time steps).
_LABEL_INDEX = r"([A-Za-z0-9]+(?:\s*[+-]\s*[0-9]+)?)"  # 1, l, l-1 (the layer before), t+1
LABEL_RE = re.compile(r"\^\s*\{\s*(?:\(\s*" + _LABEL_INDEX + r"\s*\)|\[\s*" + _LABEL_INDEX
                      + r"\s*\]|<\s*" + _LABEL_INDEX + r"\s*>|\\langle\s*" + _LABEL_INDEX
                      + r"\s*\\rangle)\s*"
                      r"(T|\\top(?![A-Za-z])|\\intercal(?![A-Za-z])"
                      r"|\\mathsf\s*\{?\s*T\s*\}?)?\s*\}")


#: A transpose (any spelling :data:`TRANSPOSE_RE` takes) with a subscript after it,
#: ``x^\top_i``, ``x^{T}_{i}``, which TeX sets as ``x_i^\top``.
TRANSPOSE_THEN_SUB_RE = re.compile(r"(?:" + TRANSPOSE_RE.pattern + r")(?=\s*_)")

#: Blanks and an underscore: where a subscript may start (every subscript pattern begins so).
_SUBSCRIPT_AHEAD_RE = re.compile(r"\s*_")

#: ``^(1)``, ``^(l)`` written without braces: an index or a power? (refused)
BARE_INDEX_RE = re.compile(r"\^\s*\(\s*([0-9]+|[A-Za-z])\s*\)")


#: The start of an index superscript (``W^{(1)``, ``a^{[l]``) that :data:`LABEL_RE` did not take
#: whole: more follows it in the same superscript (``W^{(1)-1}``, read literally W^{1-1} = I).
LABEL_OPEN_RE = re.compile(r"\^\s*\{\s*(?:\(\s*[A-Za-z0-9]+\s*\)|\[\s*[A-Za-z0-9]+\s*\])")


#: The star of an optimum, ``x^*`` or ``x^{\star}``: a symbol of its own, as an index is.
STAR_RE = re.compile(r"\^\s*(?:\*|\\ast(?![A-Za-z])|\\star(?![A-Za-z])"
                     r"|\{\s*(?:\*|\\ast(?![A-Za-z])|\\star(?![A-Za-z]))\s*"
                     r"(T|\\top(?![A-Za-z])|\\intercal(?![A-Za-z])|\\mathsf\s*\{?\s*T\s*\}?)?\s*\})")


#: The superscripts read as postfix operators, in the order they are tried, each with the
#: characters that can follow its ``^`` (a blank aside): no other can start a match.
_POSTFIX_SUPERSCRIPTS = ((INVTRANSPOSE_RE, "INVTRANSPOSE", "{-"),
                         (TRANSPOSE_RE, "TRANSPOSE", "TH\\{"),
                         (INVERSE_RE, "INVERSE", "{-"), (HADPOW_RE, "HADPOW", "{"))


def _refuse_out_of_range(m, text) -> None:
    """A number written with an exponent (``1e400``) beyond the range of floating point, in
    which the check computes, is refused where it is written."""
    mantissa = m.group().lower().partition("e")[0]
    if float(mantissa) != 0 and not 2.3e-308 < abs(float(m.group())) < float("inf"):
        raise _err(f"the number `{m.group()}` is outside the range of floating point (about "
                   "10^{-308} to 10^{308}), in which matderiv checks its results", m.start(),
                   "write the expression in other units", m.end(), text)


def _read_label(text, i):
    """A superscript index at ``i`` (:data:`LABEL_RE`, or the star of :data:`STAR_RE`):
    ((index, LaTeX), new_i, transpose) where ``transpose`` is the span of a transpose written
    in the same superscript (``x^{(i)\\top}``) or None; (None, i, None) when there is none."""
    if not text.startswith("^", i):  # (both patterns start with the `^`)
        return None, i, None
    d = text[i + 1:i + 2]  # (^* ^\ast ^\star ^{...; a blank, or the end, as ""; in any string)
    if d.isspace():
        d = ""
    m = STAR_RE.match(text, i) if d in "*\\{" else None
    if m:  # x^{*\top}: the optimum transposed
        return ("star", "^{*}"), m.end(), (m.start(1), m.end()) if m.group(1) else None
    m = LABEL_RE.match(text, i) if d in "{" else None
    if not m:
        return None, i, None
    index = re.sub(r"\s+", "", next(g for g in m.groups()[:4] if g))  # (l - 1) is (l-1)
    opener = m.group()[m.group().index("{") + 1:].lstrip()
    if opener.startswith("("):
        shown = "(" + index + ")"
    elif opener.startswith("["):
        shown = "[" + index + "]"
    else:
        shown = "\\langle " + index + " \\rangle"
    transpose = (m.start(5), m.end()) if m.group(5) else None
    return (index, "^{" + shown + "}"), m.end(), transpose


#: Subscripts beyond letters and digits, as ML texts write them: a word in text or roman
#: type (``W_{\text{out}}``, ``b_\mathrm{o}``, ``W_{\rm in}``), ``\max``/``\min``
#: (``\lambda_{\max}``) and a step (``h_{t-1}``, ``x_{k+1}``).
WORD_SUB_RE = re.compile(
    r"\s*_\s*(?:\{\s*(\\(?:text|mathrm|textrm|textnormal|operatorname|mathit|textit|mathsf)"
    r"\s*\{\s*[A-Za-z0-9]+\s*\}|\\rm\s+[A-Za-z0-9]+|\\(?:max|min)(?![A-Za-z])"
    r"|[A-Za-z0-9]+\s*[+-]\s*[0-9]+)\s*\}"
    r"|(\\(?:text|mathrm|textrm|textnormal|operatorname|mathit|textit|mathsf)\s*\{\s*[A-Za-z0-9]+\s*\}"
    r"|\\(?:max|min)(?![A-Za-z])))")


_SUB_STYLES = {"text": "text", "textrm": "text", "textnormal": "text", "mathit": "mathit",
               "textit": "mathit", "mathsf": "mathsf"}


def sub_name(sub: str) -> str:
    r"""The plain-name part of a subscript as written: ``\text{out}`` -> ``out``, ``\max`` ->
    ``max``, ``t-1`` -> ``tm1``, ``t+1`` -> ``tp1``, ``\alpha`` -> ``alpha`` (an identifier)."""
    word = re.sub(r"^\\(?:[A-Za-z]+\s*\{|rm\s+)", "", sub).strip("{} ").lstrip("\\")
    return word.replace(" ", "").replace("-", "m").replace("+", "p")


def _read_sub(text, i):
    """A subscript at ``i`` (``_1``, ``_{12}``, ``_\\alpha``, ``_{\\text{out}}``, ``_{t-1}``):
    (content as written, new_i) or (None, i)."""
    c = text[i:i + 1]
    if c != "_" and not c.isspace():  # (both patterns start with \s*_: the usual case, settled
        return None, i                # without trying them)
    w = WORD_SUB_RE.match(text, i)
    if w:
        sub = (w.group(1) or w.group(2)).strip()
        cmd = re.match(r"\\([A-Za-z]+)", sub)
        if cmd and cmd.group(1) not in ("max", "min"):  # one spelling per type style
            style = _SUB_STYLES.get(cmd.group(1), "mathrm")
            return f"\\{style}{{{sub_name(sub)}}}", w.end()
        return re.sub(r"\s+", "", sub), w.end()
    m = SUBSCRIPT_RE.match(text, i)
    if not m:
        return None, i
    content = m.group(1) or m.group(2) or ("\\" + m.group(3) if m.group(3) else None)
    if content and content.startswith("\\") and content[1:] not in GREEK:
        return None, i
    return content, m.end()


def _bold_shorthand(name: str):
    r"""(letter, greek) of a bold shorthand of the ICLR and NeurIPS ``math_commands.tex``,
    which many ML papers use: ``\vx`` is a bold vector x, ``\mW`` a bold matrix W, ``\vtheta``
    and ``\mSigma`` their Greek forms; None for another name."""
    head, letter = name[:1], name[1:]
    if head == "v" and (len(letter) == 1 and letter.islower() or letter in GREEK_LOWER):
        return letter, len(letter) > 1
    if head == "m" and (len(letter) == 1 and letter.isupper() or letter in GREEK_UPPER):
        return letter, len(letter) > 1
    return None


def _read_arg(text, i):
    """A macro argument at ``i``: ``{...}`` (no nested braces) or one char / command.
    Returns (content, new_i) or (None, i)."""
    m = ARG_RE.match(text, i)
    if not m:
        return None, i
    return (m.group(1).strip() if m.group(1) is not None else m.group(2)), m.end()


def _stripped_group(m: re.Match, g: int) -> tuple[str, tuple[int, int]]:
    """Group ``g`` of ``m`` without its surrounding spaces, and its span.  (The patterns take
    the spaces into the group rather than around it: ``\\s*(.*?)\\s*`` backtracks in cubic
    time on a long run of spaces.)"""
    raw = m.group(g)
    a = m.start(g) + len(raw) - len(raw.lstrip())
    return raw.strip(), (a, a + len(raw.strip()))


def _norm_subscript(m: re.Match) -> _Tok:
    """The NORMSUB token of a match of NORMSUB_RE (its span starts at the ``_``)."""
    val = next(g for g in m.groups() if g)
    return _Tok("NORMSUB", val, m.start() + (len(m.group()) - len(m.group().lstrip())), m.end())


#: One-character operators and their token types.
_SIMPLE_TOKENS = {"+": "PLUS", "-": "MINUS", "\u2212": "MINUS", "*": "TIMES", "/": "SLASH",
                  "\u00b7": "TIMES", "\u22c5": "TIMES", "\u2299": "HADAMARD",
                  "\u2218": "HADAMARD", "\u2297": "KRON", "\u00d7": "TIMES"}


class _Tokenizer:
    #: starts of the \langle groups with a comma (an instance's set made at the first: most
    #: texts have none)
    angle_commas = frozenset()

    def __init__(self, text: str):
        self.text = text
        self.toks: list[_Tok] = []
        self.stack: list[tuple[str, int, int]] = []   # (kind, start, end) of open brackets
        self.frac: list[list[int]] = []                # [remaining args, depth]
        self.last_underscore = text.rfind("_")         # (no subscript can start after it)
        self.round_opens: list[_Tok] = []              # the LPAR tokens of round brackets
        #: the LaTeX and boldness each symbol name prints with: its first spelling; bold
        #: anywhere makes a bold kind (recorded as the symbols are read)
        self.spellings: dict[str, tuple[str, bool]] = {}

    # helpers ----------------------------------------------------------------------------
    def prev_operand(self) -> bool:
        return bool(self.toks) and self.toks[-1].type in _OPERAND_END

    def superscript_start(self) -> int:
        """The index of the first token of the group the last token closes (its ``{`` for a
        ``}``), else of the last token itself: where a superscript ending here began."""
        toks = self.toks
        k = len(toks) - 1
        if k >= 0 and toks[k].type == "RBRACE":
            depth = 0
            while k >= 0:
                depth += {"RBRACE": 1, "LBRACE": -1}.get(toks[k].type, 0)
                if depth == 0:
                    break
                k -= 1
        return k

    def after_function_power(self) -> bool:
        """Whether the last token ends the power of a function name (``\\sin^2``,
        ``\\sin^{2}``, ``\\sin^{-1}``): a space after it comes before the argument."""
        toks = self.toks
        if len(toks) >= 2 and toks[-2].type == "FUNC" and toks[-1].type in _POWER_TOKENS:
            return True
        k = self.superscript_start()
        return k >= 2 and toks[k - 1].type == "CARET" and toks[k - 2].type == "FUNC"

    def emit_symbol(self, start, end, info, transpose=None) -> int:
        """A SYM token for ``text[start:end]``; with ``transpose`` (a span inside it, from an
        index such as ``x^{(i)\\top}``) the symbol ends there and a TRANSPOSE token follows."""
        if transpose is None:
            self.emit("SYM", self.text[start:end], start, end, info)
        else:
            self.emit("SYM", self.text[start:transpose[0]], start, transpose[0], info)
            self.emit("TRANSPOSE", self.text[transpose[0]:transpose[1]], *transpose)
        return end

    def emit(self, type_, value, start, end, info=None):
        self.toks.append(_Tok(type_, value, start, end, info))
        if info is not None:  # a SYM (the one token with an info): the spelling of its name
            spellings = self.spellings
            got = spellings.get(info.name)
            if got is None:
                spellings[info.name] = (info.latex, info.bold)
            elif info.bold and not got[1]:
                spellings[info.name] = (got[0], True)
        if self.frac and type_ not in ("LPAR", "LBRACE", "LBAR", "LNORM", "FRAC", "CARET",
                                       "MINUS") and self.frac[-1][1] == len(self.stack):
            self._frac_arg_done()  # (tested first whether a \frac is open: most often none is)

    def _frac_arg_done(self):
        self.frac[-1][0] -= 1
        if self.frac[-1][0] == 0:
            self.frac.pop()

    def open(self, kind, type_, start, end, value=None):
        tok = _Tok(type_, value if value is not None else self.text[start:end], start, end)
        self.toks.append(tok)
        self.stack.append((kind, start, end))
        if kind == "(":
            self.round_opens.append(tok)

    def close(self, kind, type_, start, end):
        text = self.text
        if not self.stack:
            raise _err(f"unmatched closing `{text[start:end]}`", start,
                       "remove it or add the matching opening bracket", end, text)
        okind, ostart, oend = self.stack[-1]
        if okind != kind:
            raise _err(f"`{text[ostart:oend]}` is closed by `{text[start:end]}`", ostart,
                       f"close it with `{CLOSER_OF.get(okind, '?')}`", oend, text)
        self.stack.pop()
        self.toks.append(_Tok(type_, text[start:end], start, end))
        if self.frac and self.frac[-1][1] == len(self.stack):
            self._frac_arg_done()

    # main loop --------------------------------------------------------------------------
    def run(self) -> list[_Tok]:
        text = self.text
        n = len(text)
        i = 0
        # the time limit is polled once for a short text (its tokens take microseconds), once
        # a token for a long one
        tick()
        long = n > _TICK_EACH_TOKEN_PAST
        while True:
            c = text[i:i + 1]  # (spacing starts with a blank, `~` or a command; "" at the end)
            if c in _NO_SPACING_STARTS:  # (the commonest case: the token at once)
                if long:
                    tick()
                i = self.token_at(i)
                continue
            if c == " ":
                nxt = text[i + 1:i + 2]
                if nxt != "\\" and nxt != "~" and not nxt.isspace():
                    # one plain blank, the commonest spacing: SPACE_RE would take it alone (each
                    # of its pieces starts with a blank, `~` or a backslash), and it is no
                    # explicit space: the token after it is read at once
                    i += 1
                    c = nxt
                    m = None
                else:
                    m = SPACE_RE.match(text, i)
            elif c == "\\":
                m = SPACE_RE.match(text, i) if text[i + 1:i + 2] in _SPACING_COMMANDS else None
            elif c == "~" or c.isspace():
                m = SPACE_RE.match(text, i)
            else:
                m = None
            if m is None:  # (the usual case: no spacing, so nothing to insert before the token)
                if not c:
                    break
                if long:
                    tick()
                i = self.token_at(i)
                continue
            i = m.end()
            separated = EXPLICIT_SPACE_RE.search(m.group()) is not None and \
                self.prev_operand() and not self.in_frac_arg() and \
                not self.after_function_power()
            if i >= n:
                break
            if long:
                tick()
            if not separated:
                i = self.token_at(i)
                continue
            k = len(self.toks)
            i = self.token_at(i)
            if len(self.toks) > k and self.toks[k].type in _OPERAND_START:
                # `\det X \, X^{-1}`: an explicit space between two factors ends a bare
                # function argument, as it does to the eye; it is read as a `\cdot`
                sp = m.group()
                lead = len(sp) - len(sp.lstrip())
                self.toks.insert(k, _Tok("TIMES", sp.strip(), m.start() + lead,
                                         m.start() + len(sp.rstrip())))
        if self.stack:
            kind, s, e = self.stack[-1]
            raise _err(f"unclosed `{text[s:e]}`", s,
                       f"add the matching `{CLOSER_OF.get(kind, '?')}`", e, text)
        if self.frac:
            raise _err("`\\frac` needs two arguments", len(text),
                       "write \\frac{numerator}{denominator}", None, text)
        if not self.toks:
            raise _err("empty expression", 0, "write an expression, e.g. x^\\top A x",
                       None, text)
        self._refuse_sigma_both_ways()
        return self.toks

    def _refuse_sigma_both_ways(self) -> None:
        r"""``\sigma`` before a bracket is the logistic function and elsewhere a scalar symbol;
        an expression with both (``\sigma^2 \sigma(a^\top x)``, ``\sigma (x - \mu) / \sigma``)
        is ambiguous: a standard deviation times a bracket, or the function?"""
        if "sigma" not in self.text:
            return  # (both are written with the word: most texts are settled without a walk)
        calls = [t for t in self.toks if t.type == "FUNC" and t.value in ("sigmoid", "dsigmoid")
                 and re.match(r"\\?sigma(?![a-z])", self.text[t.start:t.end])]
        if not calls or not any(t.type == "SYM" and t.info.name == "sigma" for t in self.toks):
            return
        t = calls[0]
        raise _err("`\\sigma` is both a symbol and the logistic function \\sigma(...) here",
                   t.start, "for the logistic function write \\operatorname{sigmoid}(...); "
                   "for the symbol times a bracket write \\sigma \\cdot (...)", t.end,
                   self.text)

    def in_frac_arg(self) -> bool:
        return bool(self.frac) and self.frac[-1][1] == len(self.stack)

    def token_at(self, i: int) -> int:
        text = self.text
        c = text[i]
        if c in _ASCII_LETTERS:
            nxt = text[i + 1:i + 2]
            if c != "e" and c != "I" and nxt not in _NOT_AFTER_A_LONE_LETTER and \
                    not (nxt.isspace() and _SUBSCRIPT_AHEAD_RE.match(text, i + 1)):
                # a lone letter with nothing written after it (the commonest token): what
                # letter() and symbol() come to, no function, Greek name, exponential,
                # identity, subscript, index or transpose being possible
                # (emit's work, inlined: a symbol may end an argument of \frac)
                self.toks.append(_Tok("SYM", c, i, i + 1, _PLAIN_LETTER_INFOS[c]))
                if c not in self.spellings:  # (a plain spelling changes a known one in nothing)
                    self.spellings[c] = _PLAIN_LETTER_SPELLINGS[c]
                if self.frac and self.frac[-1][1] == len(self.stack):
                    self._frac_arg_done()
                return i + 1
            return self.letter(i)
        if c in _SUPERSCRIPT_DIGITS and (self.prev_operand() or self.toks[-1:] and
                                         self.toks[-1].type == "FUNC"):  # x², \sin² x
            self.emit("CARET", c, i, i)
            self.emit("NUMBER", _SUPERSCRIPT_DIGITS[c], i, i + 1)
            return i + 1
        if c in "0123456789" or (c == "." and text[i + 1:i + 2] in tuple("0123456789")):
            if self.in_frac_arg() and c.isdigit():
                self.emit("NUMBER", c, i, i + 1)
                return i + 1
            m = NUMBER_RE.match(text, i)
            end = m.end()
            toks = self.toks
            self.refuse_number_after_symbol(i, m)
            if "e" in m.group().lower():
                _refuse_out_of_range(m, text)
            if toks and toks[-1].type == "NUMBER" and not (
                    len(toks) > 1 and toks[-2].type in ("CARET", "FRAC", "NUMBER")):
                # `2 3 x`: TeX sets it as 23 x, which is what a reader sees
                prev = toks[-1]
                raise _err(f"`{text[prev.start:end]}`: two numbers side by side", prev.start,
                           f"typeset, they read as one number, {prev.value}{m.group()}: write "
                           f"that, or {prev.value} \\cdot {m.group()} for the product", end, text)
            if m.group() == "0" and not (toks and toks[-1].type == "CARET"):  # (not x^0)
                z = ZERO_SUB_RE.match(text, end)  # 0_{mn \times mn}, as the engine prints it
                if z:
                    end = z.end()
            self.emit("NUMBER", m.group(), i, end)
            return end
        if c == "\\":
            return self.command(i)
        # brackets (no test above takes these characters: tried early, as they are common)
        if c in "([":
            self.open(c, "LPAR", i, i + 1)
            return i + 1
        if c in ")]":
            self.close(DELIMS_CLOSE[c], "RPAR", i, i + 1)
            return i + 1
        if c == "{":
            after = text[i + 1:i + 2]  # ({\rm and {\bf start with a backslash, after blanks)
            command = after == "\\" or after.isspace()
            rm = RM_GROUP_RE.match(text, i) if command else None
            if rm and rm.group(1) in FUNC_NAMES:  # {\rm tr}(A X): plain TeX's roman name
                self.emit("FUNC", FUNC_NAMES[rm.group(1)], i, rm.end())
                return rm.end()
            bf = BF_GROUP_RE.match(text, i) if command else None
            if bf:  # {\bf x}^T {\bf A} {\bf x}: plain TeX's bold symbol
                return self.bold_group(i, bf)
            self.open("brace", "LBRACE", i, i + 1)
            return i + 1
        if c == "}":
            if self.stack and self.stack[-1][0] == "norm{":  # the end of \norm{...}
                return self.close_norm("norm{", i, i + 1)
            self.close("brace", "RBRACE", i, i + 1)
            return i + 1
        if c == "^":
            if not self.prev_operand() and not (self.toks and self.toks[-1].type == "FUNC"):
                raise _err("`^` without a base", i, "put the superscript after a symbol or a "
                           "bracket", i + 1, text)
            if self.toks[-1].type != "EXP_E":
                # x^\top and x^T, the commonest superscripts: what the general path below
                # comes to (no refusal looks at a `^\` or `^T`, and TRANSPOSE_RE takes `^T`
                # and `^\top` alone), without its tests
                if text.startswith("\\top", i + 1) and \
                        text[i + 5:i + 6] not in _ASCII_LETTERS:  # (\top(?![A-Za-z]))
                    self.emit("TRANSPOSE", text[i:i + 5], i, i + 5)
                    return i + 5
                if text.startswith("T", i + 1):
                    self.emit("TRANSPOSE", "^T", i, i + 2)
                    return i + 2
            if text.startswith("\u22a4", i + 1):  # ^ and the Unicode down tack
                self.emit("TRANSPOSE", text[i:i + 2], i, i + 2)
                return i + 2
            # what follows the `^` settles which patterns can match: d is that character, or ""
            # (which is `in` every string) for a blank or the end, where all are tried
            d = text[i + 1:i + 2]
            if d.isspace():
                d = ""
            pinv = PINV_RE.match(text, i) if d in "+\\{" else None  # ^+, ^\dagger, ^{
            if pinv:
                raise _err(f"the pseudo-inverse `{pinv.group()}` is not supported", i,
                           "for a matrix of full column rank write (A^\\top A)^{-1} A^\\top, "
                           "of full row rank A^\\top (A A^\\top)^{-1}", pinv.end(), text)
            idx = BARE_INDEX_RE.match(text, i) if d in "(" else None
            if idx and self.toks[-1].type == "SYM":
                # W^(1): TeX sets only `(` as the superscript; an ASCII reader sees a power
                # W^1 = W, the writer most likely the layer index W^{(1)}
                raise _err(f"`{text[self.toks[-1].start:idx.end()]}` is ambiguous", i,
                           f"write {self.toks[-1].value}^{{({idx.group(1)})}} for an index (a "
                           f"layer, a sample) or {self.toks[-1].value}^{{{idx.group(1)}}} for a "
                           "power", idx.end(), text)
            if d in "{":  # (LABEL_OPEN_RE: ^{)
                self.refuse_index_with_power(i)
            if d in "{-":  # (INVERSE_RE: ^{-1}, ^-1)
                self.refuse_function_inverse(i)
            exponential = self.toks[-1].type == "EXP_E"  # e^{H}: H is the exponent
            for rx, typ, starts in () if exponential else _POSTFIX_SUPERSCRIPTS:
                if d not in starts:
                    continue
                m = rx.match(text, i)
                if m:
                    self.emit(typ, m.group(), i, m.end())
                    return m.end()
            self.emit("CARET", "^", i, i + 1)
            return i + 1
        if c == "_":
            end = self.norm_subscript_after_power(i)
            if end is not None:
                return end
            # (every way on from here refuses the subscript: what it is, against what precedes)
            prev = self.toks[-1] if self.toks else None
            _, end = _read_arg(text, i + 1)
            end = max(end, i + 1)
            written = text[i:end]
            if prev is not None and prev.type == "SYM" and prev.end == i:
                raise _err(f"the subscript `{written}` is not supported", i,
                           "a subscript is letters and digits (W_1, x_{in}), a word in "
                           "\\text{...} or \\mathrm{...}, \\max or \\min, or a step such as "
                           "h_{t-1}; the entries of a vector or matrix (x_{i,j}) are not symbols",
                           end, text)
            if prev is not None and prev.type == "NUMBER" and prev.value == "1" and prev.end == i:
                # 1_n: the ones vector written plain
                raise _err("unexpected `_` after the number 1", i, "for the ones vector of "
                           "size n write \\mathbf{1}_n", i + 1, text)
            if prev is not None and prev.type == "RPAR" and prev.end == i:
                # \operatorname{softmax}(z)_y
                k = written[1:].strip().strip("{}").strip()
                k = k if re.fullmatch(r"[A-Za-z0-9]", k) else "i"
                raise _err(f"a subscript after a bracket, `{written}`, picks an entry, which "
                           "matderiv does not take (entries are not symbols)", i,
                           f"for the entry {k} of a vector u write e_{k}^\\top u, with e_{k} the "
                           "unit vector of that entry (e_y^\\top \\log \\operatorname{softmax}(W x) "
                           "for \\log \\operatorname{softmax}(W x)_y)", end, text)
            if prev is not None and prev.type == "RNORM" and not text[prev.end:i].strip():
                # \|X\|_{2,1}, \|X\|_{\max}
                raise UnsupportedError(f"the norm `{written}` is not supported", i,
                                       NORMS_SUPPORTED, end=end, source=text)
            raise _err("unexpected `_`", i, "a subscript must directly follow a single "
                       "letter, as in W_1 or x_{i}", i + 1, text)
        if c == "'":
            if not self.prev_operand():
                raise _err("unexpected `'`", i, "`'` (transpose) must follow a symbol or a "
                           "closing bracket", i + 1, text)
            self.emit("PRIME", "'", i, i + 1)
            return i + 1
        simple = _SIMPLE_TOKENS
        if c == "*" and text.startswith("**", i):
            raise _err("unexpected `**`", i, _CODE_HINTS["**"], i + 2, text)
        if c in simple:
            self.emit(simple[c], c, i, i + 1)
            return i + 1
        if c == "." and text.startswith(".*", i):
            self.emit("HADAMARD", ".*", i, i + 2)
            return i + 2
        if c == ":" and self.prev_operand():
            self.emit("FROB", ":", i, i + 1)  # A : B, the Frobenius product tr(A^T B)
            return i + 1
        if c == "." and text.startswith(".'", i) and self.prev_operand():
            self.emit("PRIME", ".'", i, i + 2)  # MATLAB's transpose (x' conjugates there)
            return i + 2
        if c == "." and text.startswith("./", i):  # MATLAB's elementwise division
            self.emit("OSLASH", "./", i, i + 2)
            return i + 2
        dotpow = DOTPOW_RE.match(text, i) if c == "." and self.prev_operand() else None
        if dotpow:  # x.^2: MATLAB's elementwise power
            self.emit("HADPOW", dotpow.group(), i, dotpow.end())
            return dotpow.end()
        if c == "\u1d40":  # superscript T
            self.emit("TRANSPOSE", c, i, i + 1)
            return i + 1
        if text.startswith("\u207b\u00b9", i):  # superscript -1
            self.emit("INVERSE", text[i:i + 2], i, i + 2)
            return i + 2
        if c == "\u2016":  # the double bar of a norm
            return self.bar(i, i + 1, "||", None)
        if c == "|":
            return self.bar(i, i + 1, "|", None)
        if c in UNICODE_GREEK:
            return self.symbol(i, i + 1, UNICODE_GREEK[c], greek=True, bold=False)
        if c == "," and self.stack and self.stack[-1][0] == "angle":
            opened = self.stack[-1][1]  # (where its \langle starts: one comma to a bracket)
            if opened in self.angle_commas:
                raise _err("a second comma in an inner product", i,
                           "\\langle u, v \\rangle takes two arguments", i + 1, text)
            if not self.angle_commas:  # (the first: made now, see the class's attributes)
                self.angle_commas = set()
            self.angle_commas.add(opened)
            self.emit("COMMA", ",", i, i + 1)  # \langle u, v \rangle
            return i + 1
        what = {",": "comma", "=": "`=`", "&": "`&`", "$": "`$`"}.get(c, f"`{c}`")
        hint = ("the expression may contain no top-level comma (the variable comes after it)"
                if c == "," else "a full stop or comma of the sentence goes after the macro: "
                "\\matderiv<...>." if c in ".;" and not text[i + 1:].strip()
                else _CODE_HINTS.get(text[i:i + 2], _CODE_HINTS.get(c))
                or "matderiv reads symbols, numbers, + - products, ^ and the functions of its "
                "manual")
        raise _err(f"unexpected {what} in the expression", i, hint, i + 1, text)

    def refuse_number_after_symbol(self, i, number):
        """``W1``, ``x_12`` (TeX sets x_1 followed by 2): a number right after a symbol is no
        multiple a writer means (2 W is), most likely a name or a longer subscript.  Refused."""
        text, toks = self.text, self.toks
        if not toks or toks[-1].type != "SYM" or toks[-1].end != i:
            return
        sym, digits = toks[-1], number.group()
        base, _, sub = sym.value.partition("_")
        sub = sub.strip("{}")
        hint = (f"write {base}_{{{sub}{digits}}} for the subscript {sub}{digits}" if sub else
                f"write {sym.value}_{{{digits}}} for a subscript")
        raise _err(f"`{text[sym.start:number.end()]}`: a number right after a symbol", sym.start,
                   hint + f", or {digits} {sym.value} for a multiple", number.end(), text)

    def refuse_index_with_power(self, i):
        """``W^{(1)-1}`` at the ``^`` at ``i``: a layer index with a power in one superscript,
        read literally W^{1-1} = I, which no writer means.  Refused."""
        text, sym = self.text, self.toks[-1]
        if sym.type != "SYM":
            return
        opened = LABEL_OPEN_RE.match(text, i)
        if not opened:
            return
        _, end = _read_arg(text, i + 1)
        index = opened.group()[opened.group().index("{") + 1:].strip()
        raise _err(f"`{text[sym.start:end]}` mixes an index and a power in one superscript",
                   sym.start, f"write ({sym.value}^{{{index}}})^{{...}} for a power or inverse "
                   "of the indexed symbol", end, text)

    def refuse_function_inverse(self, i):
        """``\\sin^{-1}(t)`` at the ``^`` at ``i``: the inverse function or the reciprocal (both
        are written so); ``\\det^{-1}(X)``, a reciprocal to write as a fraction.  Refused."""
        text, f = self.text, self.toks[-1]
        if f.type != "FUNC":
            return
        inv = INVERSE_RE.match(text, i)
        if not inv:
            return
        name, written = text[f.start:f.end], text[f.start:inv.end()]
        recip = f"write \\frac{{1}}{{{name}(...)}} for the reciprocal"
        if f.value not in ELEMENTWISE:
            raise _err(f"`{written}`: a reciprocal written as a power of the function", f.start,
                       recip, inv.end(), text)
        raise _err(f"`{written}` is ambiguous: the inverse function or the reciprocal", f.start,
                   recip + (", \\arctan(...) for the inverse function" if f.value == "tan" else
                            "; inverse functions other than \\arctan are not supported"),
                   inv.end(), text)

    def angle(self, start, end, name):
        """``\\langle`` or ``\\rangle`` (sized or not) of an inner product; a closing one
        takes a Frobenius subscript, ``\\rangle_F``."""
        if name == "langle":
            self.open("angle", "LANGLE", start, end)
            return end
        sub = INNER_SUB_RE.match(self.text, end)
        self.close("angle", "RANGLE", start, sub.end() if sub else end)
        return sub.end() if sub else end

    def bar(self, start, end, kind, force):
        """``|`` (kind "|") or ``\\|`` (kind "||"); ``force`` is "open"/"close"/None."""
        typ_open, typ_close = ("LBAR", "RBAR") if kind == "|" else ("LNORM", "RNORM")
        closing = force == "close" or (
            force is None and self.stack and self.stack[-1][0] == kind and self.prev_operand())
        if closing:
            if kind == "||":
                return self.close_norm(kind, start, end)
            self.close(kind, typ_close, start, end)
        else:
            self.open(kind, typ_open, start, end)
        return end

    def close_norm(self, kind, start, end) -> int:
        """Close a norm (``\\|`` or the ``}`` of ``\\norm{``) at ``start:end`` with the
        subscript that may follow it (``_2``, ``_F``); returns where reading goes on."""
        self.close(kind, "RNORM", start, end)
        m = NORMSUB_RE.match(self.text, end)
        if m:
            self.toks.append(_norm_subscript(m))
            return m.end()
        return end

    def norm_subscript_after_power(self, i: int) -> int | None:
        """``\\|x\\|^2_2``: the norm's subscript written after its power.  The subscript token
        goes right after the closing ``\\|`` (where ``\\|x\\|_2^2`` has it); the end of the
        subscript, or None when the ``_`` at ``i`` is not one."""
        toks = self.toks
        if not toks or toks[-1].type not in ("RBRACE", "NUMBER", "SYM"):
            return None
        k = self.superscript_start()  # ^{2}: back to its opening brace
        if k < 2 or toks[k - 1].type != "CARET" or toks[k - 2].type != "RNORM":
            return None
        m = NORMSUB_RE.match(self.text, i)
        if not m:
            return None
        toks.insert(k - 1, _norm_subscript(m))
        return m.end()

    def letter(self, i):
        text = self.text
        nxt = text[i + 1:i + 2]
        if nxt.isascii() and nxt.isalpha():  # (a lone letter is no function, Greek or word)
            m = ASCII_FUNC_RE.match(text, i)
            if m and not (self.toks and self.toks[-1].type == "CARET"):
                self.emit("FUNC", FUNC_NAMES[m.group(1)], i, m.end())
                return m.end()
            g = ASCII_GREEK_RE.match(text, i)
            if g and g.group() in GREEK and g.group() not in ("Xi", "Pi") and \
                    not (i and text[i - 1].isalpha()):
                # tau, Sigma, lambda typed plainly are the Greek letters, as in --wrt tau (they
                # were t a u, products of vectors, with errors naming single letters); Xi and Pi
                # stay X i and P i, a matrix times a vector
                return self.greek(i, g.end(), g.group())
            w = ASCII_WORD_CALL_RE.match(text, i)
            if w and not (i and text[i - 1].isalpha()):
                # norm(x), relu(x), mean(x): a function name, not n o r m times (x)
                raise _err(f"the function `{w.group(1)}` is not supported", i,
                           "the functions are " + _FUNCTIONS_LISTED + " (a norm is \\|x\\|)",
                           w.end(1), text)
        c = text[i]
        if c == "e" and not (self.toks and self.toks[-1].type == "CARET"):
            j = SPACE_RE.match(text, i + 1)
            j = j.end() if j else i + 1
            t = TRANSPOSE_RE.match(text, j) or INVTRANSPOSE_RE.match(text, j)
            if text.startswith("^", j) and (t is None or "H" in t.group()):
                # e^{...} is the exponential, e^T a transposed vector e; e^H and e^{-H} stay
                # exponentials (of a matrix H), not conjugate transposes
                self.emit("EXP_E", "e", i, i + 1)
                return i + 1
        return self.symbol(i, i + 1, c, greek=False, bold=False)

    def symbol(self, start, end, letter, greek, bold):
        text = self.text
        after = text[end:end + 1]
        if after == "^":  # x^T, x^\top (the commonest): no index, and no subscript after them
            plain = self.last_underscore < end and (
                text.startswith("T", end + 1) or text.startswith("\\top", end + 1)
                and text[end + 5:end + 6] not in _ASCII_LETTERS)
        else:
            plain = after != "_" and not (after.isspace() and _SUBSCRIPT_AHEAD_RE.match(text, end))
        if plain:
            # the usual case, a symbol with nothing written after it: what follows can start
            # no subscript (``\s*_``), index or transpose (``^``, with no blank before it), or
            # is a transpose that starts no index (``^T``, ``^\top``) with no `_` after it, so
            # the general path below would read none and emit the same token
            if letter == "I" and not greek:
                self.emit("IDENT", text[start:end], start, end)
            else:
                self.emit("SYM", text[start:end], start, end, _sym_info(letter, greek, bold, None))
            return end
        sub, j = (None, end)
        if not (self.toks and self.toks[-1].type == "CARET"):
            if letter == "I" and not greek:
                m = IDENT_POWER_SUB_RE.match(text, end)  # I_{n^2}, as the engine prints it
                if m:
                    self.emit("IDENT", text[start:m.end()], start, m.end())
                    return m.end()
            sub, j = _read_sub(text, end)
        if letter == "I" and not greek:
            self.emit("IDENT", text[start:j], start, j)
            return j
        if self.toks and self.toks[-1].type == "CARET":
            return self.emit_symbol(start, j, _sym_info(letter, greek, bold, sub, None))
        return self.finish_symbol(start, j, letter, greek, bold, sub)

    def finish_symbol(self, start, k, letter, greek, bold, sub) -> int:
        r"""The symbol ``letter`` at ``text[start:k]``, its subscript ``sub`` read: with the
        index after it (``x^{(i)}``), or, without a subscript so far, a transpose that a
        subscript follows (``x^\top_i``, which TeX sets as ``x_i^\top``)."""
        text = self.text
        m = TRANSPOSE_THEN_SUB_RE.match(text, k) if sub is None and text.startswith("^", k) \
            and self.last_underscore > k else None  # (it starts with `^` and ends before a `_`)
        if m:
            sub, end = _read_sub(text, m.end())
            if sub is not None:
                self.emit("SYM", text[start:k], start, k, _sym_info(letter, greek, bold, sub))
                self.emit("TRANSPOSE", m.group(), m.start(), m.end())
                return end
        label, k, transpose = _read_label(text, k)
        return self.emit_symbol(start, k, _sym_info(letter, greek, bold, sub, label), transpose)

    def command(self, i):
        text = self.text
        m = COMMAND_RE.match(text, i)
        if not m:
            raise _err("a lone backslash", i, "remove it", i + 1, text)
        name = m.group(1)
        j = m.end()
        # the commonest commands first (no other test below takes their names)
        if name in SIZE_CMDS:
            return self.sized(i, j, name)
        if name in BOLD_CMDS:
            return self.bold(i, j, name)
        if name in NAME_CMDS:
            return self.named(i, j, name)
        if name == "|":
            return self.bar(i, j, "||", None)
        if name in ("langle", "rangle"):
            return self.angle(i, j, name)
        if name in TRANSPOSE_MACROS and self.prev_operand():
            self.emit("TRANSPOSE", text[i:j], i, j)  # x\T, with \T defined as ^\top (a macro)
            return j
        if name == "norm":  # \norm{x} (physics, mathtools' \norm*{x}, a common macro): \|x\|
            m = NORM_CMD_RE.match(text, j)
            if m:
                self.open("norm{", "LNORM", i, m.end())
                return m.end()
        if name in ("{", "}"):
            if name == "{":
                self.open("{", "LPAR", i, j)
            else:
                self.close("{", "RPAR", i, j)
            return j
        if name in GREEK:
            return self.greek(i, j, name)
        if name == "sqrt":
            m = ROOT_INDEX_RE.match(text, j)
            if m:  # \sqrt[n]{u} is u^(1/n)
                index, (a, b) = _stripped_group(m, 1)
                if not index.isdigit() or int(index) < 2:
                    raise _err(f"root index `{index}` is not a whole number of 2 or more",
                               a, "write \\sqrt[3]{x} for a cube root, or a power x^{1/3}",
                               b, text)
                self.emit("FUNC", "sqrt" if index == "2" else "root" + index, i, m.end())
                return m.end()
        if name in FUNC_COMMANDS:
            base = LOG_BASE_RE.match(text, j) if name in ("log", "ln") else None
            if base:
                raise _err(f"`\\{name}{base.group().strip()}` (a logarithm to another base) is "
                           "not supported", i, "write \\log(x) / \\log(2) for \\log_2 x",
                           base.end(), text)
            self.emit("FUNC", FUNC_COMMANDS[name], i, j)
            return j
        if name == "vec" and CALL_BRACKET_RE.match(text, j):
            self.emit("FUNC", "vec", i, j)  # \vec(X): vectorisation; \vec{x} is the accent
            return j
        if name in ACCENTS:
            return self.accented(i, j, name)
        if name in OPERATOR_CMDS:
            self.emit(OPERATOR_CMDS[name], text[i:j], i, j)
            return j
        if name in ("frac", "tfrac", "dfrac", "cfrac"):
            if DERIVATIVE_FRAC_RE.match(text, j):
                raise _err("a derivative `\\frac{d}{d...}` is not supported in an expression", i,
                           _NOT_IN_EXPRESSIONS["partial"], j, text)
            self.emit("FRAC", text[i:j], i, j)
            self.frac.append([2, len(self.stack)])
            return j
        if name in ("lvert", "rvert", "lVert", "rVert", "vert", "Vert", "mid"):
            kind = "||" if name[-4:] == "Vert" else "|"
            force = "open" if name[0] == "l" else "close" if name[0] == "r" else None
            return self.bar(i, j, kind, force)
        if name in ("lbrace", "lbrack", "lparen"):
            self.open(DELIMS_OPEN["\\" + name], "LPAR", i, j)
            return j
        if name in ("rbrace", "rbrack", "rparen"):
            self.close(DELIMS_CLOSE["\\" + name], "RPAR", i, j)
            return j
        if name in ("top", "intercal", "mathsf"):
            raise _err(f"`\\{name}` outside a superscript", i,
                       "write the transpose as a superscript: X^\\top", j, text)
        if name == "sum" and SUM_CALL_RE.match(text, j):
            # \sum(u) with no limits, the sum of the entries, as \operatorname{sum}(u)
            self.emit("FUNC", "sum", i, j)
            return j
        if name == "sum" and SUM_LIMITS_RE.match(text, j):
            raise _err("`\\sum` is not supported in an expression with limits (a sum over "
                       "entries)", i,
                       _SUM_WITH_LIMITS_HINT, j, text)
        if name in _NOT_IN_EXPRESSIONS:
            raise _err(f"`\\{name}` is not supported in an expression", i,
                       _NOT_IN_EXPRESSIONS[name], j, text)
        if name in ("max", "min", "argmax", "argmin", "sup", "inf"):
            raise _err(f"`\\{name}` is not supported", i,
                       "it is not differentiable where its arguments tie; write a smooth form, "
                       "e.g. \\log(\\mathbf{1}^\\top \\exp(x)) for a soft maximum", j, text)
        if name in _OTHER_OPERATORS:
            raise _err(f"`\\{name}` ({_OTHER_OPERATORS[name]}) is not supported", i,
                       "write products side by side or with \\cdot, \\odot (elementwise), "
                       "\\otimes (Kronecker), / by a scalar, \\oslash (elementwise), or an inner "
                       "product \\langle a, x \\rangle", j, text)
        if name in _OTHER_LATEX_FUNCTIONS:
            raise _err(f"the function `\\{name}` is not supported", i,
                       "the functions are " + _FUNCTIONS_LISTED, j, text)
        bold = _bold_shorthand(name)
        if bold:  # \vx, \mW, \vtheta, \mSigma: the ICLR/NeurIPS math_commands.tex shorthands
            letter, greek = bold
            return self.symbol(i, j, letter, greek=greek, bold=True)
        close = difflib.get_close_matches(name, KNOWN_COMMANDS, n=3, cutoff=0.6)
        fclose = difflib.get_close_matches(name, KNOWN_FUNCTIONS, n=3, cutoff=0.5)
        sugg = list(dict.fromkeys(fclose + close))[:3]
        hint = ("did you mean " + " or ".join("\\" + s for s in sugg) + "?") if sugg else \
            "known functions: " + _FUNCTIONS_LISTED
        raise _err(f"unknown command `\\{name}`", i, hint, j, text)

    def greek(self, i, j, name):
        """A Greek letter at ``text[i:j]``, as ``\\tau`` or typed plainly as ``tau``: a symbol;
        ``\\sigma`` before a bracket is the logistic function, ``\\sigma'(`` its derivative, and
        ``\\sigma\\,(`` (a visible space) is refused as ambiguous."""
        text = self.text
        if name == "sigma" and CALL_BRACKET_RE.match(text, j):
            self.emit("FUNC", "sigmoid", i, j)
            return j
        spaced = SPACED_CALL_RE.match(text, j) if name == "sigma" else None
        if spaced and EXPLICIT_SPACE_RE.search(spaced.group(1)):
            raise _err("ambiguous `" + text[i:spaced.end()] + "`: the logistic function, or "
                       "the symbol sigma times the bracket?", i,
                       "for the function write \\sigma(...) (a negative space \\! may stand "
                       "between); for the product write \\sigma \\cdot (...)",
                       spaced.end(), text)
        prime = SIGMA_PRIME_RE.match(text, j) if name == "sigma" else None
        if prime and CALL_BRACKET_RE.match(text, prime.end()):
            # sigma'(u): the derivative of the logistic function, as the printer writes it
            self.emit("FUNC", "dsigmoid", i, prime.end())
            return prime.end()
        return self.symbol(i, j, name, greek=True, bold=False)

    def accented(self, i, j, accent):
        """``\\hat{y}``, ``\\bar x``, ``\\tilde{\\Sigma}_1``, ``\\hat{\\mathbf{y}}``: a symbol of
        its own (plain name ``y__hat``), of the shape its letter has."""
        text = self.text
        arg, k = _read_arg(text, j)
        if arg is None:
            raise _err(f"`\\{accent}` needs an argument", i, f"write \\{accent}{{x}}", j, text)
        return self.accented_symbol(i, k, _accent_info(accent, arg.strip()))

    def accented_symbol(self, i, k, info):
        """The symbol ``info`` made by an accent at ``text[i:k]`` (None: the accent was not on
        one letter), with the subscript and index written after it (``\\hat{y}_i``)."""
        text = self.text
        if info is None:
            raise _err(f"`{text[i:k].strip()}` is not a symbol", i,
                       "an accent goes on one Latin or Greek letter, as in \\hat{y}, "
                       "\\bar{x} or \\tilde{\\Sigma}", k, text)
        if "_" not in info.name.split("__")[0]:
            sub, k = _read_sub(text, k)
            if sub:
                info = _with_sub(info, sub)
        label, k, transpose = _read_label(text, k)
        if label:
            info = _SymInfo(info.name + "__" + label[0], info.latex + label[1], info.bold,
                            info.upper, info.greek)
        return self.emit_symbol(i, k, info, transpose)

    def sized(self, i, j, name):
        text = self.text
        k = SPACE_RE.match(text, j)
        k = k.end() if k else j
        rest = text[k:k + 8]
        side = "open" if name in ("left",) or name.endswith("l") else \
            "close" if name == "right" or name.endswith("r") else None
        for d in _DELIMS_LONGEST_FIRST:
            if rest.startswith(d) and (not d[-1].isalpha() or not text[k + len(d):k + len(d) + 1].isalpha()):
                end = k + len(d)
                if d in DELIMS_OPEN:
                    self.open(DELIMS_OPEN[d], "LPAR", i, end)
                else:
                    self.close(DELIMS_CLOSE[d], "RPAR", i, end)
                return end
        for d, kind in (("\\|", "||"), ("\\Vert", "||"), ("\\lVert", "||"), ("\\rVert", "||"),
                        ("|", "|"), ("\\vert", "|"), ("\\lvert", "|"), ("\\rvert", "|")):
            if rest.startswith(d) and not text[k + len(d):k + len(d) + 1].isalpha() or \
                    rest.startswith(d) and not d[-1].isalpha():
                force = side
                if force is None and d.startswith("\\l"):
                    force = "open"
                if force is None and d.startswith("\\r"):
                    force = "close"
                return self.bar(i, k + len(d), kind, force)
        m = re.match(r"\\([A-Za-z]+)", rest)
        if m and m.group(1) in ("langle", "rangle"):
            return self.angle(i, k + m.end(), m.group(1))  # \left\langle, \big\rangle
        if m and m.group(1) in _OTHER_OPERATORS:
            return self.command(k)  # \left\star: refused as \star is
        if rest.startswith("."):
            raise _err(f"`\\{name}.` (an invisible delimiter) is not supported", i,
                       "use matching visible brackets", k + 1, text)
        raise _err(f"`\\{name}` must be followed by a bracket", i,
                   "write e.g. \\left( ... \\right)", j, text)

    def bold_group(self, i, m):
        """``{\\bf x}`` (``m`` matched it) is the symbol ``\\mathbf{x}``, ``{\\bf 1}`` and
        ``{\\bf I}`` the ones vector and the identity, as ``\\mathbf{1}`` and ``\\mathbf{I}``."""
        return self.bold_arg(i, m.end(), "mathbf", m.group(1), m.group())

    def bold(self, i, j, name):
        text = self.text
        arg, k = _read_arg(text, j)
        if arg is None:
            raise _err(f"`\\{name}` needs an argument", i, f"write \\{name}{{x}}", j, text)
        arg = arg.strip()
        return self.bold_arg(i, k, name, arg, f"\\{name}{{{arg}}}")

    def bold_arg(self, i, k, name, arg, written):
        """The bold ``arg`` of ``\\<name>`` (``written`` at ``text[i:k]``): a symbol, the ones
        vector, the identity, 0; a set or an operator refused."""
        text = self.text
        acc = ACCENT_ARG_RE.match(arg) if arg.startswith("\\") else None  # (it starts so)
        if acc and acc.group(1) in ACCENTS:  # \mathbf{\hat{y}} is \hat{\mathbf{y}}
            inner, end = _read_arg(arg, acc.end())
            info = None if inner is None or end != len(arg) else \
                _accent_info(acc.group(1), f"\\{name}{{{inner.strip()}}}")
            return self.accented_symbol(i, k, info)
        inner_sub = None
        ms = re.fullmatch(r"(\\?[A-Za-z]+|[01])\s*_\s*(?:\{\s*([A-Za-z0-9]+)\s*\}|([A-Za-z0-9]))",
                          arg) if "_" in arg else None  # (a subscript inside: \mathbf{x_1})
        if ms:
            arg, inner_sub = ms.group(1), ms.group(2) or ms.group(3)
        if arg == "1":
            _, k2 = _read_sub(text, k)
            self.emit("ONES", text[i:k2], i, k2)
            return k2
        if arg == "0":
            self.emit("NUMBER", "0", i, k)
            return k
        if arg == "I":
            _, k2 = _read_sub(text, k)
            self.emit("IDENT", text[i:k2], i, k2)
            return k2
        if name in ("mathbb", "mathds", "mathbbm") and arg in _NUMBER_SETS:
            raise _err(f"`\\{name}{{{arg}}}` ({_NUMBER_SETS[arg]}) is a set, not a quantity", i,
                       "write the expression alone; declarations give the kinds of its "
                       "symbols (scalar={...}, vector={...}, matrix={...})", k, text)
        if name == "mathbb" and arg in _BLACKBOARD_OPERATORS:
            raise _err(f"`\\mathbb{{{arg}}}` ({_BLACKBOARD_OPERATORS[arg]}) is not supported",
                       i, "differentiate the expression inside: the derivative of an expectation "
                       "is the expectation of the derivative", k, text)
        greek = arg.startswith("\\")
        letter = arg[1:] if greek else arg
        if greek and letter in GREEK or not greek and len(letter) == 1 and letter.isalpha():
            sub = inner_sub
            if sub is None:
                sub, k = _read_sub(text, k)
            return self.finish_symbol(i, k, letter, greek, True, sub)
        raise _err(f"`{written}` is not a symbol", i,
                   "a symbol is one Latin or Greek letter, e.g. \\mathbf{x} or "
                   "\\boldsymbol{\\theta}", k, text)

    def named(self, i, j, name):
        text = self.text
        if text.startswith("*", j):
            j += 1
        word_run = RM_WORD_RE.match(text, j) if name == "rm" else None
        if word_run and word_run.group(1) in FUNC_NAMES:  # \rm tr: the font switch takes a word
            self.emit("FUNC", FUNC_NAMES[word_run.group(1)], i, word_run.end())
            return word_run.end()
        arg, k = _read_arg(text, j)
        if arg is None:
            raise _err(f"`\\{name}` needs an argument", i, f"write \\{name}{{tr}}", j, text)
        word = arg.strip()
        if word.startswith("\\"):  # (the pattern starts so)
            word = re.sub(r"^\\(?:rm|mathrm)\s*", "", word)
        word = word.strip("{} ")
        if word == "d":
            raise _err(f"`\\{name}{{d}}` (a differential) is not supported in an expression", i,
                       _NOT_IN_EXPRESSIONS["partial"], k, text)
        prime = SIGMA_PRIME_RE.match(text, k) if FUNC_NAMES.get(word) == "sigmoid" else None
        if prime and CALL_BRACKET_RE.match(text, prime.end()):
            # \operatorname{sigmoid}'(u), as the printer writes sigma' beside a symbol sigma
            self.emit("FUNC", "dsigmoid", i, prime.end())
            return prime.end()
        if word in FUNC_NAMES:
            self.emit("FUNC", FUNC_NAMES[word], i, k)
            return k
        sq = SQUARED_CALL_RE.match(text, k) if word == "sech" else None
        if sq:  # sech^2(u), the derivative of tanh, as the printer writes it
            self.emit("FUNC", "sech2", i, sq.end(1))
            return sq.end(1)
        if word == "e":
            self.emit("EXP_E", "e", i, k)
            return k
        if word == "I":
            self.emit("IDENT", text[i:k], i, k)
            return k
        if len(word) == 1 and word.isalpha():
            sub, k = _read_sub(text, k)
            label, k, transpose = _read_label(text, k)
            info = _sym_info(word, False, False, sub, label)
            return self.emit_symbol(i, k, info, transpose)
        sugg = [] if word in _OTHER_LATEX_FUNCTIONS else \
            difflib.get_close_matches(word, list(FUNC_NAMES), n=3, cutoff=0.65)
        hint = ("did you mean " + " or ".join(sugg) + "?") if sugg else \
            "the functions are " + ", ".join(sorted(set(FUNC_NAMES) - _FUNC_ALIASES))
        raise _err(f"the function `\\{name}{{{word}}}` is not supported", i, hint, k, text)


# ------------------------------------------------------------------------------------------
# Lark
# ------------------------------------------------------------------------------------------
_NoLexer = None  # made by _no_lexer(): a module-level class, so that Lark.save can pickle it


def _no_lexer():
    """The lexer class given to Lark: tokens are fed by hand (``parse_interactive``).  Defined
    on first use (importing lark is not free) but stored as this module's ``_NoLexer``, so that
    pickle finds it by name when the parser tables are saved to and loaded from the cache."""
    global _NoLexer
    if _NoLexer is None:
        from lark.lexer import Lexer

        class _NoLexer(Lexer):  # noqa: F811
            def __init__(self, lexer_conf):
                pass

            def lex(self, lexer_state, parser_state):  # pragma: no cover - never used
                return iter(())

        _NoLexer.__qualname__ = "_NoLexer"
    return _NoLexer


@lru_cache(maxsize=1)
def _lark():
    """The LALR parser of grammar.lark.  Building its tables costs ~60 ms, so they are kept in
    the disk cache (:func:`matderiv.cache.parser_file`) under a name made of the grammar, the
    options, and the lark and Python versions, saved with ``Lark.save`` and written atomically;
    a file that cannot be loaded is rebuilt and rewritten.  (Lark's own ``cache=`` option
    cannot pickle a lexer class defined in a function, and writes its file in place.)"""
    import hashlib
    import sys

    import lark
    from lark import Lark

    grammar = (Path(__file__).with_name("grammar.lark")).read_text(encoding="utf-8")
    options = dict(parser="lalr", lexer=_no_lexer(), start="start", maybe_placeholders=False,
                   keep_all_tokens=True)
    path = None
    try:
        from .. import cache

        tag = hashlib.sha256("\0".join(
            [grammar, repr(sorted((k, str(v)) for k, v in options.items())), lark.__version__,
             "%d.%d" % sys.version_info[:2]]).encode("utf-8")).hexdigest()[:32]
        path = cache.parser_file(f"lark-{tag}.pickle")
    except Exception:  # noqa: BLE001 - no cache is fine
        path = None
    if path is not None:
        try:
            with open(path, "rb") as fh:
                return Lark.load(fh)
        except FileNotFoundError:
            pass
        except Exception:  # noqa: BLE001 - unreadable or from elsewhere: rebuild, rewrite
            pass
    parser = Lark(grammar, **options)
    if path is not None:
        import io

        try:
            buf = io.BytesIO()
            parser.save(buf)
            cache.write_parser_file(path, buf.getvalue())
        except Exception:  # noqa: BLE001 - a parser that cannot be saved still parses
            pass
    return parser


def _expected_words(expected) -> str:
    exp = set(expected or ())
    words = []
    if exp & _OPERAND_START:
        words.append("an operand (a symbol, number, bracket or function)")
    for t in ("RPAR", "RBRACE", "RBAR", "RNORM"):
        if t in exp:
            words.append(HUMAN[t])
    if exp & {"PLUS", "MINUS"} and not words:
        words.append("an operator")
    if "$END" in exp:
        words.append("the end of the expression")
    return " or ".join(words) if words else "something else"


@lru_cache(maxsize=1)
def _tables():
    """What the LALR driver needs of lark's parser, prepared once: a list indexed by state of
    each state's row, each token's (or rule name's) action in it; then the start state.

    An action is the next state (an int) for a shift (and the goto of a rule name: lark's table
    holds both as shifts); ``(rule name, size, build)`` for a reduction by a rule of ``size``
    symbols, where ``build(children, builder)`` makes its value (see :func:`_reducer`) and a
    ``build`` of None keeps the children's list as the value (a repetition's helper rule); or,
    for a reduction by a one-symbol rule that lark inlines (a ``?rule`` with its one child, whose
    callback is only :class:`lark.parse_tree_builder.ExpandSingleChild`: the child is the value)
    or whose node is its symbol's (:data:`_ONE_CHILD_TREES`), a dictionary of the state it
    leads to by the state below (see :func:`_inlined_chains`).
    Lark's table keys reductions by ``Rule`` objects, whose hash is Python code: done on every
    reduction it was a fifth of the driver's time."""
    from lark.parse_tree_builder import ExpandSingleChild
    from lark.parsers.lalr_analysis import Shift

    lalr = _lark().parser.parser.parser  # Lark -> ParsingFrontend -> LALR_Parser -> _Parser
    table = lalr.parse_table
    reductions: dict = {}

    def prepared(action, arg):
        if action is Shift:
            assert type(arg) is int  # (lark's states are numbered: the driver tests for an int)
            return arg
        key = id(arg)
        if key not in reductions:
            callback, size = lalr.callbacks[arg], len(arg.expansion)
            assert size > 0  # (grammar.lark has no empty rule: the driver takes size symbols)
            if size == 1 and (type(callback) is ExpandSingleChild or
                              getattr(callback, "args", None) in _ONE_CHILD_TREES):
                build = _INLINED  # (its value is its one child's)
            else:
                build = _reducer(callback)
            reductions[key] = (arg.origin.name, size, build)
        return reductions[key]
    states = {state: {tok: prepared(*act) for tok, act in row.items()}
              for state, row in table.states.items()}
    end_state = table.end_states["start"]
    states = _past_default_reductions(states, end_state)
    assert sorted(states) == list(range(len(states)))  # (numbered from 0: rows in a list)
    rows = _inlined_chains(states, end_state)
    # the end state (reached by the reduction to `start`, on `$END` alone) shifts `$END`: the
    # driver's loop ends there, with no end test after each reduction
    assert not rows[end_state]
    rows[end_state] = {_END: end_state}
    return rows, table.start_states["start"]


#: The ``build`` of an inlined one-symbol reduction while the tables are prepared.
_INLINED = object()

#: The lark callbacks (``partial(Tree, name)``: their ``args``) of the one-symbol rules whose
#: node is their symbol's, inlined as a ``?rule`` is: the builder's ``r_start``, ``r_suparg``
#: and ``r_fracarg`` build ``ch[0]`` alone, and :meth:`_Builder.postop` reads a postfix token
#: as its one-token ``postop``.
_ONE_CHILD_TREES = (("start",), ("suparg",), ("fracarg",), ("postop",))


def _reducer(callback):
    """The ``build(children, builder)`` of a reduction whose lark callback is ``callback``: it
    does what lark's does (the children of repetitions, ``x (op y)*``, are made by helper rules
    whose values are spliced into their parent's children; a ``?rule``'s one child is inlined),
    in one function (lark's goes through three calls for each reduction).  A helper rule's value
    is a plain list of its children (lark's is a tree it opens at once): its ``build`` is None
    when that list is the children as they are.  For a rule the builder reads straight from its
    children (:data:`_EAGER_RULES`), given a :class:`_Builder` the node is built at once,
    ``(expr, start, end)``, rather than made a parse tree the builder walks afterwards.  A
    callback of another kind is lark's own, given trees for the helper lists."""
    from functools import partial

    from lark.parse_tree_builder import ChildFilterLALR_NoPlaceholders, ExpandSingleChild
    from lark.tree import Tree

    node_builder = callback
    to_include = None
    if type(node_builder) is ChildFilterLALR_NoPlaceholders:
        to_include, node_builder = tuple(callback.to_include), node_builder.node_builder
    inline_one = type(node_builder) is ExpandSingleChild
    if inline_one:
        node_builder = node_builder.node_builder
    plain = type(node_builder) is partial and node_builder.func is Tree \
        and len(node_builder.args) == 1 and not node_builder.keywords  # (a tree of its name)
    name = node_builder.args[0] if plain else None
    helper = plain and name.startswith("_")  # (lark opens these into their parent)
    if not plain or helper and inline_one:
        def lark_own(children, builder=None):  # pragma: no cover - not met by grammar.lark
            return callback([Tree("_", c) if type(c) is list else c for c in children])
        return lark_own
    splice = _splicer(to_include)
    if helper:
        return splice
    rule = _RULES[name] if name in _EAGER_RULES else None
    if inline_one and (to_include is None or len(to_include) == 1):
        def reduce(children, builder=None):  # pragma: no cover - not met by grammar.lark
            filtered = children if splice is None else splice(children)
            if len(filtered) == 1:  # (lark's ExpandSingleChild)
                return filtered[0]
            if rule is not None and builder is not None:
                return rule(builder, filtered)
            return Tree(name, filtered)
        return reduce
    # (a `?rule` of two symbols or more keeps them all, and a helper's list is never empty:
    # ExpandSingleChild, which inlines a rule of one child, never does here)
    if splice is None:
        if rule is None:
            def reduce(children, builder=None):
                return Tree(name, children)
        else:
            def reduce(children, builder=None):
                if builder is not None:
                    return rule(builder, children)
                return Tree(name, children)
    elif rule is None:
        def reduce(children, builder=None):
            return Tree(name, splice(children))
    elif [to_expand for _, to_expand in to_include] == [False, True]:
        # `x __x_star` (prod, postfix, ...), the commonest: _splicer's `right`, inlined
        def reduce(children, builder=None):
            if builder is not None:
                return rule(builder, [children[0], *children[1]])
            return Tree(name, [children[0], *children[1]])
    else:
        def reduce(children, builder=None):
            if builder is not None:
                return rule(builder, splice(children))
            return Tree(name, splice(children))
    return reduce


def _splicer(to_include):
    """The function that makes a rule's children of the symbols it reduces, opening the lists
    of the helper rules among them (lark's ``ChildFilterLALR_NoPlaceholders`` with lists for
    trees), or None when none is opened (the children are the symbols)."""
    if to_include is None or not any(to_expand for _, to_expand in to_include):
        return None
    assert [i for i, _ in to_include] == list(range(len(to_include)))  # (keep_all_tokens)
    opened = [to_expand for _, to_expand in to_include]
    if opened == [True] + [False] * (len(opened) - 1):
        def left(children, builder=None):  # `__x_star: __x_star op y`: a repetition goes on
            filtered = children[0]  # (lark reuses the first list too: it is no one else's)
            filtered += children[1:]
            return filtered
        return left
    if opened == [False, True]:
        def right(children, builder=None):  # `x __x_star`: a repetition's first and the rest
            return [children[0], *children[1]]
        return right

    def splice(children, builder=None):
        filtered = []
        for i, to_expand in to_include:
            if to_expand:
                if filtered:
                    filtered += children[i]
                else:
                    filtered = children[i]
            else:
                filtered.append(children[i])
        return filtered
    return splice


def _past_default_reductions(states: dict, end_state) -> dict:
    """``states`` with each shift and goto that enters a state whose one action, whatever the
    lookahead, is an inlined one-symbol reduction (``atom: SYM .``, ``primary: atom .``) going
    on to where that reduction leads, as long as the lookaheads taken there are the same.

    Exact: an inlined reduction keeps the value and replaces the top state by the goto of the
    state below, which is the state this shift or goto leaves (the same row); a lookahead the
    skipped state takes is taken where it leads (the same set), one it refuses is refused
    there with the same expected tokens (the driver's error lists the row's tokens).  The end
    state is never skipped to (the driver's end test looks for it after a reduction).  A symbol
    then goes from its shift to ``postfix: primary .`` in one step, not three."""
    default = {}  # state -> the rule name of its one inlined reduction
    for state, row in states.items():
        act = next(iter(row.values()), None)
        if type(act) is tuple and act[2] is _INLINED and all(a is act for a in row.values()):
            default[state] = act[0]  # (one tuple per rule: see prepared)
    taken: dict = {}  # state -> the tokens its row takes (found when first needed)

    def tokens(state):
        got = taken.get(state)
        if got is None:
            got = taken[state] = {k for k in states[state] if k.isupper()}
        return got
    out = {}
    for b, row in states.items():
        new = None
        for key, act in row.items():
            cur = act
            while type(cur) is int and cur in default:  # (a shift or a goto into one)
                nxt = row.get(default[cur])
                if type(nxt) is not int or nxt == end_state or tokens(nxt) != tokens(cur):
                    break
                cur = nxt
            if cur is not act:
                new = new or dict(row)
                new[key] = cur
        out[b] = new or row
    return out


def _inlined_chains(states: dict, end_state) -> list:
    """The rows of ``states`` in a list by state, each inlined one-symbol reduction made a
    dictionary: for each state that can be below the one reducing (a state whose row shifts
    or goes to it), the state where that reduction leads and where the inlined reductions that
    the same lookahead takes from there after it lead, up to an action of another kind (on
    ``$END``, ``sum: elem .`` goes on to ``start: sum .`` in one step, not three).

    Exact: an inlined reduction keeps the value and replaces the top state by the goto of the
    state below, which stays the same through the chain, so where the chain ends depends on
    the lookahead, the state below and the state it starts from alone.  It stops at a state
    whose action for the lookahead is a shift, another reduction, none (the driver reports the
    error with that state's row, where the reductions one by one met it) or, on ``$END``, at
    the end state (where the driver's end test stops)."""
    below: dict = {}  # state -> the states that shift or go to it
    for b, row in states.items():
        for act in row.values():
            if type(act) is int:
                below.setdefault(act, set()).add(b)
    rows = []
    for state in range(len(states)):
        row = dict(states[state])
        for typ, act in row.items():
            if type(act) is not tuple or act[2] is not _INLINED:
                continue
            ends = {}
            for b in below.get(state, ()):
                cur, a = state, act
                while type(a) is tuple and a[2] is _INLINED:
                    cur = states[b][a[0]]
                    if typ == _END and cur == end_state:
                        break
                    a = states[cur].get(typ)
                ends[b] = cur
            row[typ] = ends
        rows.append(row)
    return rows


_END = "$END"
#: The end of every text, as the token list the driver appends to the text's tokens (one
#: list, never changed: its span is not read, ``_unexpected`` places the end by the text).
_END_TOKS = [_Tok(_END, "", 0, 0)]


#: What :func:`_tokens_to_tree` returns when a node built during the parse was refused.
_REDO = object()


def _tokens_to_tree(toks: list[_Tok], text: str, builder: "_Builder | None" = None):
    """Run lark's LALR tables over our tokens.  The loop is lark's ``feed_token`` without
    its per-token objects (lark's Token, the interactive parser): parsing is a fifth of the
    time of a derivation, twice over (the input, and the printed result read back).

    Without ``builder``, the parse tree.  With it, the nodes of :data:`_EAGER_RULES` are built
    as they are reduced (see :func:`_reducer`) and the result is ``(expr, start, end)``, or
    :data:`_REDO` when building refused something: the builder met the refusals of the text
    in another order than it does walking the whole tree (and a syntax error further on comes
    first there), so the caller parses again, then builds."""
    rows, start = _tables()
    state_stack = [start]
    value_stack: list = []
    top = start  # (state_stack[-1], kept in a local)
    tick()
    long = len(toks) > _EAGER_TOKENS  # (a short text is polled once, a long one each token)
    for t in toks + _END_TOKS:
        if long:
            tick()
        typ = t.type
        while True:
            try:
                act = rows[top][typ]
            except KeyError:
                raise _unexpected(t, {k for k in rows[top] if k.isupper()}, toks,
                                  text) from None
            if type(act) is int:  # a shift
                state_stack.append(act)
                value_stack.append(t)
                top = act
                break
            if type(act) is dict:  # inlined one-symbol rules: the value stays, the state moves
                top = state_stack[-1] = act[state_stack[-2]]
            else:
                origin, size, build = act  # (no rule is empty: size > 0)
                children = value_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
                top = rows[state_stack[-1]][origin]
                state_stack.append(top)
                if build is None:  # a helper rule's list: its children
                    value_stack.append(children)
                else:
                    try:
                        value_stack.append(build(children, builder))
                    except (MatDerivError, RecursionError):
                        if builder is None:  # pragma: no cover - a tree is refused nothing
                            raise
                        return _REDO
    return value_stack[-2]  # (the end state shifted the `$END` token: see _tables)


def _unexpected(t: _Tok, expected: set, toks, text: str) -> MatDerivError:
    if t.type == "$END":
        return _err("the expression ends too early", len(text),
                    "expected " + _expected_words(expected), None, text)
    shown = text[t.start:t.end]
    if t.type in ("RPAR", "RBRACE", "RBAR", "RNORM") and toks and "RPAR" not in expected:
        msg = f"unexpected `{shown}`: the bracket is empty or ends in an operator"
    else:
        msg = f"unexpected `{shown}`"
    hint = "expected " + _expected_words(expected)
    before = [p for p in toks if p.end <= t.start]
    if t.type in ("MINUS", "PLUS") and before and (
            before[-1].type == "FUNC" or len(before) > 2 and before[-3].type == "FUNC"
            and before[-2].type == "CARET"):
        name = text[before[-1].start:before[-1].end] if before[-1].type == "FUNC" else \
            text[before[-3].start:before[-3].end]
        hint = (f"an argument that starts with a sign needs brackets: "
                f"{name}(-x), not {name} -x")
    return _err(msg, t.start, hint, t.end, text)


# ------------------------------------------------------------------------------------------
# Parse tree -> Expr
# ------------------------------------------------------------------------------------------
def _tok_type(c):
    """The token type of a parse-tree child, None for a subtree (what ``getattr(c, "type",
    None)`` gives, without the AttributeError a tree raises and catches inside it)."""
    return c.type if type(c) is _Tok else None


def _neg(e: Expr) -> Expr:
    return Const(-e.value) if isinstance(e, Const) else Mul((Const(-1), e))


#: A span made without its class's __init__: its two slots set directly (every node has one).
_new_span, _set_span_start, _set_span_end = Span.__new__, Span.start.__set__, Span.end.__set__


class _Builder:
    # ids of nodes of rarer kinds, each an instance's set made when its first node is (most
    # texts have none, so most builders make no set): of the products that are bare arguments (chains), of those
    # of an elementwise function without power (bare_chains), of the e^{...} exponentials, of
    # the reciprocals of divisions, of the traces of inner products
    chains = bare_chains = exp_powers = divisions = inner_products = frozenset()

    def __init__(self, text: str, canon: dict[str, tuple[str, bool]]):
        self.text = text
        self.spans: dict[int, Span] = {}
        self.keep: list[Expr] = []           # keeps every built node alive (unique ids)
        self.grouped: set[int] = set()       # ids of nodes that came from brackets
        self.canon = canon  # (see _Tokenizer.spellings)

    def node(self, e: Expr, start: int, end: int) -> Expr:
        self.keep.append(e)
        span = _new_span(Span)  # (Span's own __init__ goes through object.__setattr__ twice)
        _set_span_start(span, start)
        _set_span_end(span, end)
        self.spans[id(e)] = span
        return e

    def span_of(self, e, default=(0, 0)) -> tuple[int, int]:
        sp = self.spans.get(id(e))
        return (sp.start, sp.end) if sp else default

    def err(self, msg, start, end, hint=""):
        return _err(msg, start, hint, end, self.text)

    # ---------------------------------------------------------------------------------------
    def build(self, t):
        """Returns (expr, start, end)."""
        if type(t) is tuple:  # built while parsing: (expr, start, end) (no work: no tick)
            return t
        if type(t) is not _Tok:  # (a token is built below: _Tok has no subclass)
            tick()  # (a tree's build recurses; a token's is one node, and polls nothing)
            if isinstance(t, Expr):  # already built
                s, e = self.span_of(t)
                return t, s, e
            rule = _RULES.get(t.data)
            if rule is None:  # pragma: no cover
                raise self.err(f"internal: no rule {t.data}", 0, len(self.text))
            return rule(self, t.children)
        # a token's node (here rather than in a function of its own: the commonest build)
        s, e = t.start, t.end
        typ = t.type
        if typ == "SYM":
            info = t.info
            latex, bold = self.canon[info.name]
            if info.upper:
                kind = "matrix"
            elif info.greek and not bold:
                kind = "scalar"
            else:
                kind = "vector"
            node = Symbol(info.name, UNKNOWN, UNKNOWN, kind, latex)
        elif typ == "NUMBER":
            v = t.value  # (whole numbers as ints: the same Fraction, without parsing a string)
            node = Const(Fraction(int(v)) if v.isascii() and v.isdigit() else Fraction(str(v)))
        elif typ == "IDENT":
            node = Identity(UNKNOWN)
        elif typ == "ONES":
            node = Ones(UNKNOWN)
        else:  # pragma: no cover
            raise self.err(f"unexpected `{self.text[s:e]}`", s, e)
        # (node's work, inlined)
        self.keep.append(node)
        span = _new_span(Span)
        _set_span_start(span, s)
        _set_span_end(span, e)
        self.spans[id(node)] = span
        return node, s, e

    def r_start(self, ch):
        return self.build(ch[0])

    def r_sum(self, ch):
        e0 = ch[0]
        e0, s, end = e0 if type(e0) is tuple else self.build(e0)  # (build's first test, inlined)
        if len(ch) == 1:
            return e0, s, end
        terms = []

        def add(x):
            if isinstance(x, Add) and id(x) not in self.grouped:
                terms.extend(x.args)
            else:
                terms.append(x)
        add(e0)
        for k in range(1, len(ch), 2):
            op = ch[k]
            x, xs, xe = self.build(ch[k + 1])
            if op.type == "MINUS":
                x = self.r_neg([op, x])[0]
            add(x)
            end = xe
        return self.node(Add(tuple(terms)), s, end), s, end

    def _negate(self, x):
        if isinstance(x, Const):
            return Const(-x.value)
        if isinstance(x, Mul) and id(x) not in self.grouped:
            if isinstance(x.args[0], Const):
                c = x.args[0].value
                rest = x.args[1:]
                if c == -1:
                    return rest[0] if len(rest) == 1 else Mul(rest)
                return Mul((self.node(Const(-c), *self.span_of(x.args[0])),) + rest)
            return Mul((Const(-1),) + x.args)
        return Mul((Const(-1), x))

    def r_neg(self, ch):
        op = ch[0]
        x, xs, xe = self.build(ch[1])
        s = op.start
        new = self._negate(x)
        for k in new.children()[:1]:
            if isinstance(k, Const) and id(k) not in self.spans:
                self.node(k, s, op.end)
        return self.node(new, s, xe), s, xe

    def r_pos(self, ch):
        x, xs, xe = self.build(ch[1])
        return x, ch[0].start, xe

    def r_negfactor(self, ch):
        return self.r_neg(ch)

    def r_negprod(self, ch):
        return self.r_neg(ch)

    def r_term(self, ch):
        return self.build(ch[0])

    def r_elem(self, ch):
        x, s, end = self.build(ch[0])
        if len(ch) == 1:
            return x, s, end
        cur = x
        for k in range(1, len(ch), 2):
            op = ch[k]
            y, ys, ye = self.build(ch[k + 1])
            if op.type == "HADAMARD":
                if isinstance(cur, Hadamard) and id(cur) not in self.grouped:
                    new = Hadamard(cur.args + (y,))
                else:
                    new = Hadamard((cur, y))
            elif op.type == "KRON":
                if isinstance(cur, Kron) and id(cur) not in self.grouped:
                    new = Kron(cur.args + (y,))
                else:
                    new = Kron((cur, y))
            elif op.type == "FROB":  # A : B, as \langle A, B \rangle
                product = self.node(Mul((self.node(Transpose(cur), *self.span_of(cur)), y)), s, ye)
                new = Trace(product)
                if not self.inner_products:  # (the first: made now, see the class's attributes)
                    self.inner_products = set()
                self.inner_products.add(id(new))
            else:
                new = HadamardDiv(cur, y)
            cur = self.node(new, s, ye)
            end = ye
        return cur, s, end

    def r_prod(self, ch):
        x = ch[0]
        x, s, end = x if type(x) is tuple else self.build(x)  # (build's first test, inlined)
        if len(ch) == 1:
            return x, s, end
        factors = [x]
        k = 1
        while k < len(ch):
            c = ch[k]
            if type(c) is _Tok and c.type == "TIMES":
                k += 1
                c = ch[k]
            if type(c) is _Tok and c.type == "SLASH":
                self._refuse_ambiguous_division(ch, k)
                y, ys, ye = self.build(ch[k + 1])
                if isinstance(y, Const):
                    if y.value == 0:
                        raise self.err("division by zero", c.start, ye)
                    inv = self.node(Const(1 / y.value), ys, ye)
                else:
                    m1 = self.node(Const(-1), c.start, c.end)
                    inv = self.node(Power(y, m1), ys, ye)
                    if not self.divisions:  # (the first: made now, see the class's attributes)
                        self.divisions = set()
                    self.divisions.add(id(inv))
                factors.append(inv)
                end = ye
                k += 2
                continue
            y, ys, ye = c if type(c) is tuple else self.build(c)
            if type(y) is Const and y.value == 1 and self.text[ys:ye] == "1":
                self._refuse_trailing_one(factors, ys, ye)
            factors.append(y)
            end = ye
            k += 1
        return self._mul(factors, s, end), s, end

    def _refuse_trailing_one(self, factors, s, e):
        r"""A ``1`` written after a symbol or bracket in a product (``X 1``, ``x^\top 1``): as
        the number it changes nothing, so the author meant the ones vector (the row sums
        ``X \mathbf{1}``, the sum ``x^\top \mathbf{1}``); read as the number, the derivative
        printed would be of another function.  Refused, naming the bold form."""
        if all(type(f) is Const for f in factors):
            return  # 2 \cdot 1: numbers
        raise self.err("a `1` after a factor of a product reads as the number one, which "
                       "changes nothing", s, e, "for the ones vector write \\mathbf{1} "
                       "(X \\mathbf{1} for the row sums, x^\\top \\mathbf{1} for the sum of "
                       "the entries); for the number, leave it out")

    def _refuse_ambiguous_division(self, ch, k):
        r"""``\|x\|^2 / 2\sigma^2``: the ``/`` at ``ch[k]`` with factors written side by side
        after its divisor.  Read left to right it divides by ``2`` alone; SymPy and most
        readers divide by ``2\sigma^2``.  Neither reading is safe to print, so it is an error."""
        last = k + 1
        while last + 1 < len(ch) and _tok_type(ch[last + 1]) not in ("TIMES", "SLASH"):
            last += 1
        if last == k + 1:
            return
        text = self.text
        _, ds, de = self.build(ch[k + 1])
        _, _, re_ = self.build(ch[last])
        divisor, run = text[ds:de].strip(), text[ds:re_].strip()
        raise self.err(f"ambiguous division `/ {run}`: it may divide by `{divisor}` alone or by "
                       f"`{run}`", ch[k].start, re_,
                       f"to divide by the product write / ({run}) or \\frac{{...}}{{{run}}}; "
                       f"to divide by `{divisor}` alone write \\frac{{...}}{{{divisor}}} "
                       f"{text[de:re_].strip()}")

    def _mul(self, factors, s, end):
        """Product of same-level factors; numeric constants fold into one leading Const."""
        for f in factors:
            if type(f) in _OPENED_OR_FOLDED:
                break
        else:  # no product to open, no number to fold (the usual case): the factors as written
            if len(factors) == 1:
                return factors[0]
            return self.node(Mul(tuple(factors)), s, end)
        flat = []
        for f in factors:
            if isinstance(f, Mul) and id(f) not in self.grouped and \
                    (not f.args or isinstance(f.args[0], Const)):
                # a product built at this level (unary minus / division folding)
                flat.extend(f.args)
            else:
                flat.append(f)
        consts, others = [], []
        for f in flat:
            (consts if isinstance(f, Const) else others).append(f)
        if len(consts) <= 1 and (not consts or flat[0] is consts[0]):
            args = flat
        else:
            c = Fraction(1)
            for f in consts:
                c *= f.value
            if not others:
                return self.node(Const(c), s, end)
            cs, ce = self.span_of(consts[0], (s, end))
            args = ([self.node(Const(c), cs, ce)] if c != 1 else []) + others
        if len(args) == 1:
            return args[0]
        return self.node(Mul(tuple(args)), s, end)

    def r_postfix(self, ch):
        x = ch[0]
        x, s, end = x if type(x) is tuple else self.build(x)  # (build's first test, inlined)
        for op in ch[1:]:
            x, end = self.postop(x, s, op)
        return x, s, end

    def postop(self, x, s, op):
        # op is a postfix token (the driver inlines a postop of one token) or a
        # Tree('postop', [CARET, suparg])
        t = op if type(op) is _Tok else op.children[0]
        if t.type == "TRANSPOSE" or t.type == "PRIME":
            if type(x) is Const:
                x = self._transposed_number(x, s, t)
            return self.node(Transpose(x), s, t.end), t.end
        if t.type == "INVERSE":
            return self.node(Inverse(x), s, t.end), t.end
        if t.type == "INVTRANSPOSE":
            inner = self.node(Transpose(x), s, t.end)
            return self.node(Inverse(inner), s, t.end), t.end
        if t.type == "HADPOW":
            return self.node(self._hadamard_power(x, t), s, t.end), t.end
        # CARET suparg
        ex, es, ee = self.build(op.children[1])
        return self.node(Power(x, ex), s, ee), ee

    def _transposed_number(self, x, s, tok):
        r"""The number before a transpose: ``1^\top`` (``1^T``, ``1'``) is the ones vector, as
        the many texts that write it plain mean (``1^\top x`` is the sum of the entries; read
        as the number, ``\log(1^\top \exp(x))`` had the derivative I); another number is its
        own transpose."""
        if x.value == 1 and self.text[s:tok.start].strip(" {}()") == "1":
            return self.node(Ones(UNKNOWN), s, tok.start)
        return x

    def _hadamard_power(self, x, tok):
        """``x^{\\circ k}``: k copies of x in a Hadamard product (k a whole number from 1 to
        8); ``x^{\\circ 1/2}`` is the elementwise square root."""
        m = HADPOW_RE.match(tok.value) or DOTPOW_RE.match(tok.value)
        g = next(k for k in range(1, len(m.groups()) + 1) if m.group(k) is not None)
        written, (a, b) = _stripped_group(m, g)
        ex = re.sub(r"\s+", "", written)
        where = (tok.start + a, tok.start + b)
        if ex in ("1/2", "\\frac12", "\\frac{1}{2}", "0.5", ".5"):
            return Func("sqrt", x)
        if not ex:
            raise self.err("`^{\\circ}` without an exponent", tok.start, tok.end,
                           "write the elementwise power with its exponent, x^{\\circ 2} "
                           "(a degree sign has no meaning here)")
        if not re.fullmatch(r"\d+", ex) or not 1 <= int(ex) <= 8:
            raise self.err(f"the elementwise power `{ex}` is not supported", *where,
                           "write a whole number from 1 to 8, or 1/2 for the square root "
                           "(x^{\\circ 2} is x \\odot x; an elementwise reciprocal is "
                           "\\mathbf{1} \\oslash x)")
        k = int(ex)
        return x if k == 1 else Hadamard((x,) * k)

    def r_suparg(self, ch):
        return self.build(ch[0])

    def r_negnumber(self, ch):
        x, s, e = self.build(ch[1])
        s = ch[0].start
        return self.node(Const(-x.value), s, e), s, e

    def r_primary(self, ch):
        return self.build(ch[0])

    def r_atom(self, ch):
        return self.build(ch[0])

    def r_group(self, ch):
        x = ch[1]
        x = x[0] if type(x) is tuple else self.build(x)[0]  # (build's first test, inlined)
        s, e = ch[0].start, ch[2].end
        self.grouped.add(id(x))
        # the group's span is the bracket text; the inner node keeps its own span
        return x, s, e

    def r_fracarg(self, ch):
        if len(ch) == 3:
            x, _, _ = self.build(ch[1])
            self.grouped.add(id(x))
            return x, ch[0].start, ch[2].end
        return self.build(ch[0])

    def r_frac(self, ch):
        s = ch[0].start
        a, _, _ = self.build(ch[1])
        b, _, e = self.build(ch[2])
        if isinstance(b, Const) and b.value == 0:
            raise self.err("division by zero", s, e)
        if isinstance(a, Const) and isinstance(b, Const):
            return self.node(Const(a.value / b.value), s, e), s, e
        if isinstance(b, Const):
            c = self.node(Const(1 / b.value), *self.span_of(b))
            return self.node(Mul((c, a)), s, e), s, e
        m1 = self.node(Const(-1), *self.span_of(b))
        inv = self.node(Power(b, m1), *self.span_of(b))
        if not self.divisions:  # (the first: made now, see the class's attributes)
            self.divisions = set()
        self.divisions.add(id(inv))
        if isinstance(a, Const) and a.value == 1:
            return inv, s, e
        node = self.node(Mul((a, inv)), s, e)
        self.grouped.add(id(node))
        return node, s, e

    def r_norm(self, ch):
        x, _, _ = self.build(ch[1])
        s = ch[0].start
        e = ch[2].end
        kind = "2"
        if len(ch) == 4:
            sub = ch[3].value
            e = ch[3].end
            if sub in ("F", "fro", "Fro"):
                kind = "F"
            elif sub in ("2", "1"):
                kind = sub
            else:
                what = {"*": "the nuclear norm", "\\infty": "the max norm"}.get(sub, "the norm")
                raise UnsupportedError(f"{what} `_{sub}` is not supported", ch[3].start,
                                       NORMS_SUPPORTED, end=e, source=self.text)
        return self.node(Norm(x, kind), s, e), s, e

    def r_inner(self, ch):
        r"""``\langle u, v \rangle``: tr(u^T v), the inner product of two vectors or (the
        Frobenius one) of two matrices of one shape; typing drops the trace of a 1 x 1."""
        u, us, ue = self.build(ch[1])
        v, _, _ = self.build(ch[3])
        s, e = ch[0].start, ch[4].end
        product = self.node(Mul((self.node(Transpose(u), us, ue), v)), s, e)
        trace = self.node(Trace(product), s, e)
        if not self.inner_products:  # (the first: made now, see the class's attributes)
            self.inner_products = set()
        self.inner_products.add(id(trace))
        return trace, s, e

    def r_bars(self, ch):
        x, _, _ = self.build(ch[1])
        s, e = ch[0].start, ch[2].end
        return self.node(Func("bars", x), s, e), s, e

    def r_expe(self, ch):
        s, e = ch[0].start, ch[0].end
        if len(ch) == 1:
            arg = self.node(Const(1), s, e)
        else:
            arg, _, e = self.build(ch[2])
        node = self.node(Func("exp", arg), s, e)
        if not self.exp_powers:  # (the first: made now, see the class's attributes)
            self.exp_powers = set()
        self.exp_powers.add(id(node))
        return node, s, e

    def apply(self, fname, arg, s, e, ftok):
        if fname in ELEMENTWISE or fname == "diag":
            node = Func(fname, arg)
        elif fname.startswith("root"):
            node = Power(arg, Const(Fraction(1, int(fname[4:]))))
        elif fname == "softmax":
            node = Softmax(arg)
        elif fname == "logsumexp":  # log(1^T exp(u)), written out (its gradient is softmax(u))
            ones = self.node(Transpose(self.node(Ones(UNKNOWN), s, e)), s, e)
            node = Func("log", self.node(Mul((ones, self.node(Func("exp", arg), s, e))), s, e))
        elif fname == "softplus":  # log(1 + exp(u)), written out (its gradient is sigmoid(u))
            one = self.node(Const(1), s, e)
            node = Func("log", self.node(Add((one, self.node(Func("exp", arg), s, e))), s, e))
        elif fname == "vec":
            node = Vec(arg)
        elif fname == "sum":
            node = Sum(arg)
        elif fname == "tr":
            node = Trace(arg)
        elif fname == "det":
            node = Det(arg)
        elif fname == "inv":
            node = Inverse(arg)
        elif fname == "logdet":
            inner = arg if isinstance(arg, Func) and arg.name == "bars" else \
                self.node(Det(arg), s, e)
            node = Func("log", inner)
        else:  # pragma: no cover
            raise self.err(f"unknown function {fname}", s, e)
        return self.node(node, s, e)

    def _func(self, ch, bare):
        ftok = ch[0]
        s = ftok.start
        k = 1
        power = None
        if len(ch) == 3:
            power, _, _ = self.build(ch[1].children[1])
            k = 2
        arg, _, e = self.build(ch[k])
        node = self.apply(ftok.value, arg, s, e, ftok)
        if power is not None:
            node = self.node(Power(node, power), s, e)
        return node, s, e

    def r_func_group(self, ch):
        return self._func(ch, False)

    def r_func_bare(self, ch):
        if ch[0].value == "sqrt" or ch[0].value.startswith("root"):
            # \sqrt x y is sqrt(x) y, as TeX sets it: the root takes the first factor only
            k = 2 if len(ch) == 3 else 1
            factors = self._bare_factors(ch[k].children)
            first = factors[0]
            node, s, e = self._func(list(ch[:k]) + [first[0]], True)
            if len(factors) == 1:
                return node, s, e
            end = factors[-1][2]
            return self._mul([node] + [f[0] for f in factors[1:]], s, end), s, end
        node, s, e = self._func(ch, True)
        f = node.base if isinstance(node, Power) else node  # (\sin^2 \tau A)
        if isinstance(f, Func) and f.name in ELEMENTWISE and id(f.arg) in self.chains:
            if not self.bare_chains:  # (the first: made now, see the class's attributes)
                self.bare_chains = set()
            self.bare_chains.add(id(f.arg))
        return node, s, e

    def r_bare(self, ch):
        factors = self._bare_factors(ch)
        s, end = factors[0][1], factors[-1][2]
        if len(factors) == 1:
            return factors[0]
        chain = self._mul([f[0] for f in factors], s, end)
        if not self.chains:  # (the first: made now, see the class's attributes)
            self.chains = set()
        self.chains.add(id(chain))
        return chain, s, end

    def _bare_factors(self, ch):
        """The factors of a bare function argument, ``[(expr, start, end), ...]``: the first
        with its postfix operators, then each ``barenext``."""
        x, s, end = self.build(ch[0])
        out = []
        for c in ch[1:]:
            if type(c) is not _Tok and c.data == "barenext":  # (a tree, not a postfix token)
                out.append((x, s, end))
                x, s, end = self.build(c)
            else:
                x, end = self.postop(x, s, c)
        out.append((x, s, end))
        return out

    def r_barenext(self, ch):
        return self.r_postfix(ch)  # a factor with its postfix operators

    def r_func(self, ch):  # pragma: no cover - aliases are used
        return self.build(ch[0])


#: The factors :meth:`_Builder._mul` may open (a product) or fold (a number): Mul and Const
#: have no subclasses, so their type is tested.
_OPENED_OR_FOLDED = frozenset({Mul, Const})

#: The builder's method for each rule of the parse tree (``r_<rule>``), found by the rule's
#: name with one dictionary look-up (not a ``getattr`` of a name made on every node).
_RULES = {name[2:]: meth for name, meth in vars(_Builder).items() if name.startswith("r_")}

#: The rules whose nodes are built as the parser reduces them: all but those whose trees
#: their parent reads itself (a bare argument's factors, ``barenext``), and ``func``, which
#: the grammar's aliases leave unused.
_EAGER_RULES = frozenset(_RULES) - {"bare", "barenext", "func"}

#: Texts of at most this many tokens are built while parsed: their trees are too shallow for
#: either way to reach the recursion limit (which the walk of a deep tree meets, as before).
_EAGER_TOKENS = 64


# ------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------
def parse(text: str) -> Parsed:
    """Parse ``text`` (LaTeX or ASCII, SPEC 1.1) into a :class:`Parsed`.

    Raises :class:`MatDerivError` (with ``position``, ``end``, ``hint`` and ``source``) on any
    problem; no other exception escapes.
    """
    if not isinstance(text, str):
        raise MatDerivError("the expression must be a string", None,
                            "pass the LaTeX text of the expression")
    try:
        tokenizer = _Tokenizer(text)
        toks = tokenizer.run()
        canon = tokenizer.spellings
        b = _Builder(text, canon)
        tree = _tokens_to_tree(toks, text, b) if len(toks) <= _EAGER_TOKENS else _REDO
        if tree is _REDO:  # (a long text, or one refused: parsed, then built, as two passes)
            b = _Builder(text, canon)
            tree = _tokens_to_tree(toks, text)
        expr, s, e = b.build(tree)
    except MatDerivError as err:
        raise err.with_source(text)
    except RecursionError:
        raise NestedTooDeeplyError("the expression is nested too deeply", 0,
                            "simplify the bracket nesting", source=text) from None
    except Exception as exc:  # pragma: no cover - defensive: nothing else may escape
        raise MatDerivError(f"cannot parse the expression ({type(exc).__name__}: {exc})", 0,
                            "", source=text) from None
    if len(text) > MAX_DEPTH and _deeper_than(expr, MAX_DEPTH):
        # (a tree deeper than the text is long cannot be: short texts are not walked)
        raise NestedTooDeeplyError("the expression is nested too deeply", 0,
                            f"it nests more than {MAX_DEPTH} functions or "
                            "operators (such as ^\\top or ^{-1}) one inside another; simplify it",
                            source=text)
    if id(expr) not in b.spans:
        b.node(expr, s, e)
    # spans of nodes the builder made and dropped stay in the map: ``keep`` (held by the
    # Parsed) keeps those nodes alive, so their ids are never reused by a node of the tree
    # the fields set in the instance's dictionary at once: the frozen dataclass's __init__
    # sets its ten fields one by one through object.__setattr__ (a twentieth of a short parse)
    parsed = object.__new__(Parsed)
    parsed.__dict__.update(
        tree=expr, source=text, spans=b.spans, built=b.keep,
        bare_chains=frozenset(b.bare_chains), exp_powers=frozenset(b.exp_powers),
        calls=_call_like(toks, tokenizer.round_opens) if tokenizer.round_opens else (), divisions=frozenset(b.divisions),
        inner_products=frozenset(b.inner_products), differentials=_differential_like(toks, text))
    return parsed


#: The deepest tree the reader hands on: the later stages recurse once or more per level, and a
#: chain of 300 transposes (``x^\top^\top...``) or inverses, which the reader takes without
#: recursion, overflowed one of them.  No formula of a paper comes near.
MAX_DEPTH = 150


def _deeper_than(tree, limit: int) -> bool:
    """Whether ``tree`` has more than ``limit`` levels (walked without recursion)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((k, depth + 1) for k in node.children())
    return False


def _differential_like(toks: list[_Tok], text: str) -> tuple:
    """The ``dx`` of :attr:`Parsed.differentials` in the tokens of ``text``: a symbol written as
    the plain letter d, then with nothing between them another symbol."""
    if "d" not in text:
        return ()  # (no plain d: the usual case, settled without a walk of the tokens)
    out = []
    for k in range(len(toks) - 1):
        d = toks[k]
        if d.type == "SYM" and d.value == "d" and d.end - d.start == 1:
            nxt = toks[k + 1]
            if nxt.type == "SYM" and nxt.start == d.end:
                out.append((nxt.info.name, d.start, nxt.end))
    return tuple(out)


def _call_like(toks: list[_Tok], round_opens: list[_Tok]) -> tuple:
    r"""The ``x(\tau)`` of :attr:`Parsed.calls`: a symbol, then with nothing between them a
    round bracket that holds a single symbol.  ``round_opens`` are the tokens of ``toks`` that
    open a round bracket, in order (the tokenizer's: most texts have few or none, so the tokens
    are not all walked)."""
    out = []
    last = len(toks) - 3
    k = -1
    for op in round_opens:
        k = toks.index(op, k + 1)  # (by identity, a token has no __eq__; from the last found)
        if not 1 <= k <= last:
            continue
        f, arg, cl = toks[k - 1], toks[k + 1], toks[k + 2]
        if f.type == "SYM" and op.value.endswith("(") and \
                f.end == op.start and arg.type == "SYM" and cl.type == "RPAR":
            out.append((f.info.name, arg.info.name, f.start, cl.end, f.end, arg.start, arg.end))
    return tuple(out)


_IDENTITY_SIZE_RE = re.compile(r"_\s*(?:\{([^{}]*)\}|([A-Za-z]))\s*\}?\s*$")  # (\mathbf{1_n})
#: Size letters, each with an optional power (``mn``, ``n^2``), and one of them.
_SIZE_LETTERS_RE = re.compile(r"(?:[a-z](?:\^\d+)?)+")
_SIZE_LETTER_RE = re.compile(r"([a-z])(?:\^(\d+))?")


def identity_size_letters(text: str) -> tuple[str, ...]:
    """The size letters written on an identity as the engine prints it, one per factor:
    ``I_n`` -> ``("n",)``, ``I_{mn}`` -> ``("m", "n")``, ``I_{n^2}`` -> ``("n", "n")``; ``()``
    for a bare ``I`` or a subscript that is not size letters."""
    m = _IDENTITY_SIZE_RE.search(text)
    if m is None:
        return ()
    sub = (m.group(1) or m.group(2)).replace(" ", "")
    if not _SIZE_LETTERS_RE.fullmatch(sub):
        return ()
    return tuple(a for a, k in _SIZE_LETTER_RE.findall(sub) for _ in range(int(k or 1)))


#: A name written with a subscript, ``W_1``, ``W_{12}``, ``theta_0`` (group 1 the letter or word).
_SUBSCRIPTED_NAME_RE = re.compile(r"([A-Za-z]|[A-Za-z]+)_\{?([A-Za-z0-9]+)\}?")
#: The plain name of an indexed or accented symbol, ``W__1``, ``y__hat``, ``x_i__hat``.
_PLAIN_NAME_RE = re.compile(r"([A-Za-z]+)(_[A-Za-z0-9]+)?(__[A-Za-z0-9]+)+")


def normalize_name(text: str) -> str:
    r"""The plain name of one symbol written in LaTeX or plainly: ``\Sigma`` -> ``Sigma``,
    ``\mathbf{x}`` -> ``x``, ``W_{1}`` -> ``W_1``, ``\boldsymbol{\theta}`` -> ``theta``.

    Raises :class:`MatDerivError` if ``text`` is not a single symbol.
    """
    if not isinstance(text, str):
        raise MatDerivError(f"{text!r} is not a symbol name", None,
                            "give a name such as x, W_1 or \\Sigma")
    s = text.strip()
    if len(s) == 1 and s.isascii() and s.isalpha():  # (one Latin letter, the commonest name)
        return s
    if s in GREEK:  # plain Greek name ("Sigma", "theta")
        return s
    m = _SUBSCRIPTED_NAME_RE.fullmatch(s)
    if m and (len(m.group(1)) == 1 or m.group(1) in GREEK):
        return f"{m.group(1)}_{m.group(2)}"
    m = _PLAIN_NAME_RE.fullmatch(s)
    if m and (len(m.group(1)) == 1 or m.group(1) in GREEK):
        return s  # the plain name of an indexed or accented symbol: W__1, y__hat
    try:
        toks = _Tokenizer(s).run()
    except MatDerivError as e:
        raise MatDerivError(f"`{text}` is not a symbol name ({e.message})", None,
                            "give a single symbol such as x, W_1 or \\Sigma") from None
    if len(toks) == 1 and toks[0].type == "SYM":
        return toks[0].info.name
    if len(toks) == 1 and toks[0].type == "IDENT" and s in ("I",):
        return "I"
    if len(toks) == 1 and toks[0].type == "EXP_E":
        return "e"
    raise MatDerivError(f"`{text}` is not a single symbol", None,
                        "give a single symbol such as x, W_1 or \\Sigma")


def symbol_latex(text: str) -> str | None:
    r"""The LaTeX of one symbol as :func:`normalize_name` reads it (``W^{(1)}``, ``\hat{y}``,
    ``\mathbf{x}``), or None when ``text`` is not one symbol written in LaTeX."""
    try:
        toks = _Tokenizer(text.strip()).run() if isinstance(text, str) else ()
    except MatDerivError:
        return None
    return toks[0].info.latex if len(toks) == 1 and toks[0].type == "SYM" else None


def is_bold_lowercase_greek(text: str) -> bool:
    r"""Whether ``text`` is one bold lowercase Greek symbol (``\boldsymbol{\theta}``,
    ``\bm{\mu}_1``): a vector by default, however the expression spells it."""
    if "\\" not in text or not any(c in text for c in ("bold", "bm", "pmb", "mathbf")):
        return False
    try:
        toks = _Tokenizer(text.strip()).run()
    except MatDerivError:
        return False
    if len(toks) != 1 or toks[0].type != "SYM":
        return False
    info = toks[0].info
    return info.bold and info.greek and not info.upper
