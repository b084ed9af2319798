"""``python -m annulus.verify``: certify the counter-example of Proposition 1 (Appendix D).

Exit status, one per verdict (the last line of the report says which): 0 certified (both joint
KLs < eps, properties 1-5 on a set of p-probability certified > 1/3, Delta < 1); 3 the
properties hold but the claim does not (P <= 1/3, or Delta >= 1); 1 not certified (or the
sampled success count contradicts the exact probability, see ``annulus.attack``); 2 bad input
(one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from fractions import Fraction

from annulus.numeric import to_fraction
from foundation.cli import output_file
from foundation.errors import RUNTIME_STATUS, USAGE_STATUS

#: Largest n * d the sampling section draws (about a minute of Gaussian draws on one core).
MAX_COORDINATES = 4 * 10**9


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, verbatim (no ``(see --help)`` hint,
    unlike :class:`foundation.cli.ArgumentParser`), and exits with the usage status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE_STATUS, f"{self.prog}: error: {message}\n")


def _why(name: str, kind: str, text: str, exc: ValueError) -> str:
    """The one-line reason a number was refused: not a number, or too large to read."""
    if str(exc).startswith("not a finite number"):
        return f"{name} must be {kind}, got {text!r}"
    return f"{name}: {exc}"


def _number(name: str, low: Fraction | None = None, high: Fraction | None = None,
            low_open: bool = True, high_open: bool = True):
    def parse(text: str) -> Fraction:
        try:
            value = to_fraction(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(_why(name, "a finite number", text, exc)) from None
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(
                f"{name} must be {'>' if low_open else '>='} {low}, got {text}")
        if high is not None and (value >= high if high_open else value > high):
            raise argparse.ArgumentTypeError(
                f"{name} must be {'<' if high_open else '<='} {high}, got {text}")
        return value
    parse.__name__ = name
    return parse


def _integer(name: str, minimum: int, maximum: int | None = None):
    """An argparse type: an integer in ``[minimum, maximum]`` (``1e6`` is accepted)."""
    def parse(text: str) -> int:
        try:
            value = to_fraction(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(_why(name, "an integer", text, exc)) from None
        if value.denominator != 1:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and <= {maximum}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}{upper}, got {text}")
        return int(value)
    parse.__name__ = name
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m annulus.verify", description=__doc__.splitlines()[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--eps", required=True, type=_number("eps", Fraction(0)),
                   help="bound on both KL divergences (> 0)")
    p.add_argument("--delta", required=True,
                   type=_number("delta", Fraction(0), Fraction(1, 2)),
                   help="confidence of the mistakes, in (0, 1/2)")
    p.add_argument("--Delta", default=Fraction(1, 10), type=_number("Delta", Fraction(0)),
                   help="perturbation budget (> 0)")
    p.add_argument("--dim", type=_integer("dimension", 1), default=None,
                   help="dimension d (default: the minimal one for the proof's conditions)")
    p.add_argument("--lambda1", type=_number("lambda1", Fraction(0), Fraction(1)),
                   default=None, help="mixture weight lambda1 in (0, 1) (default: canonical)")
    p.add_argument("--precision", type=_integer("precision", 5, 1000), default=30,
                   help="decimal digits of the reported values")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--symbolic", action="store_true",
                   help="also derive the closed forms with sympy and check them")
    p.add_argument("--samples", type=_integer("samples", 0), default=100_000,
                   help="points (x, y) ~ p to sample and attack (0 skips sampling)")
    p.add_argument("--sample-dim", type=_integer("sample-dim", 1), default=None,
                   help="dimension to sample at (default: the certified dimension)")
    p.add_argument("--seed", type=_integer("seed", 0), default=0, help="seed of the sampler")
    p.add_argument("--max-memory", type=_integer("max-memory", 1), default=2**30,
                   help="bound on the sampler's buffers, in bytes")
    p.add_argument("--save", type=output_file, default=None, metavar="FILE.npz",
                   help="write the demonstration attacks (vectors x, xbar) to an npz file")
    return p


def _approx(n: int) -> str:
    """A large integer in three significant digits (no float overflow)."""
    text = str(n)
    return text if len(text) <= 6 else f"{text[0]}.{text[1:3]}e+{len(text) - 1}"


def _fail(message: str) -> int:
    print(f"python -m annulus.verify: error: {message}", file=sys.stderr)
    return USAGE_STATUS


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from annulus.certificate import EXIT_STATUS, NOT_CERTIFIED, build_certificate, check_size
    from annulus.proposition import Params, minimal_dimension_closed_form
    from annulus.report import format_text, format_verdict, to_json

    try:
        params = Params(args.eps, args.delta, args.Delta)
        d = minimal_dimension_closed_form(params, third=True)  # the default d (tested equal)
        check_size(params, d)
        if args.dim is not None:
            check_size(params, args.dim)
            d = args.dim
        sample_dim = args.sample_dim or d
        if args.save is not None and args.samples == 0:
            return _fail("--save writes sampled attacks: it needs --samples > 0")
        if args.samples > 0:
            from annulus.attack import check_sampling_range
            check_sampling_range(params.Delta)
        if args.samples * sample_dim > MAX_COORDINATES:
            return _fail(f"sampling {_approx(args.samples)} points in dimension "
                         f"{_approx(sample_dim)} means {_approx(args.samples * sample_dim)} "
                         "Gaussian draws (limit "
                         f"{MAX_COORDINATES:.0e}); lower --samples, set --sample-dim, or "
                         "--samples 0")
        cert = build_certificate(params, dim=args.dim, lambda1=args.lambda1,
                                 dps=args.precision)
    except (ValueError, OverflowError, ArithmeticError) as exc:
        return _fail(str(exc))
    sampling = None
    if args.samples > 0:
        from annulus.attack import run_sampling
        try:
            sampling = run_sampling(params, params.construction(cert.dimension, cert.lambda1),
                                    cert.attack_probability, n=args.samples, seed=args.seed,
                                    dimension=args.sample_dim, max_bytes=args.max_memory,
                                    save=args.save, progress=sys.stderr.isatty())
        except (ValueError, MemoryError, ArithmeticError) as exc:
            return _fail(str(exc))
        except OSError as exc:  # writing --save failed (disk full, a vanished directory)
            print(f"python -m annulus.verify: error: {exc}", file=sys.stderr)
            return RUNTIME_STATUS
    symbolic = None
    if args.symbolic:
        from annulus.symbolic import check_against_exact
        try:
            symbolic = check_against_exact(cert)
        except ArithmeticError as exc:
            print(f"python -m annulus.verify: error: --symbolic: {exc}", file=sys.stderr)
            return RUNTIME_STATUS
    verdict, reason = cert.verdict, cert.verdict_reason()
    if symbolic is not None and not symbolic["numeric_agrees"]:
        verdict = NOT_CERTIFIED
        reason = ("the sympy closed forms and the exact evaluator disagree on a KL beyond half "
                  "the certificate's digits (see the symbolic check)")
    if sampling is not None and not sampling.consistent:
        verdict = NOT_CERTIFIED
        reason = ("the sampled success count contradicts the exact attack probability "
                  f"({sampling.test_text()})")
    if args.json:
        out = to_json(cert)
        out.update(verdict=verdict, verdict_reason=reason, exit_status=EXIT_STATUS[verdict])
        if sampling is not None:
            out["sampling"] = sampling.to_json()
        if symbolic is not None:
            out["symbolic"] = symbolic
        print(json.dumps(out, indent=2, allow_nan=False, default=str))
    else:
        print(format_text(cert, digits=min(args.precision, 8)))
        if sampling is not None:
            print()
            print(sampling.format_text())
        if symbolic is not None:
            from annulus.symbolic import format_symbolic
            print()
            print(format_symbolic(symbolic))
        print()
        print(format_verdict(verdict, reason, cert.seconds))
    return EXIT_STATUS[verdict]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("python -m annulus.verify: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(RUNTIME_STATUS)
