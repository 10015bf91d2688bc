"""Export the W1 benchmark formula's value and gradient as C, and call it from a C program.

symgrad writes ``w1_formula.c`` and ``w1_formula.h`` (a plain C ABI: a length and pointers to
float64 arrays), builds and checks them before writing.  The script then does what a C
user does: writes a small ``main.c`` that includes the header, fills 10,000 points, calls
``w1_formula_value_and_grad`` and prints the results; builds it with the flags the header
recommends (``cc -O2 -fopenmp -fno-math-errno -ffp-contract=off``, or plain ``cc -O2`` when
the compiler has no OpenMP); runs it; and compares what it printed with symgrad's own
value and gradient and with the gradient derived by hand.

Usage: ``python examples/export_c.py [DIRECTORY]`` (default: a temporary directory).
Needs a C compiler (``$CC``, else ``cc``, else ``gcc``).
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import symgrad
from symgrad.symbolic.codegen.backends import CompilerNotFoundError
from symgrad.symbolic.codegen.backends.cbuild import find_compiler


def w1_formula(x, y, z):
    """The benchmark's W1: a formula of three inputs summed over points."""
    return (symgrad.sin(x * y) * symgrad.exp(-z) + symgrad.log(1 + x * x) * symgrad.tanh(y)
            + symgrad.cos(z) * (y * y + z * z + 1) ** 1.5).sum()


def value_by_hand(x, y, z):
    """The same sum, written in NumPy."""
    return np.sum(np.sin(x * y) * np.exp(-z) + np.log(1 + x * x) * np.tanh(y) + np.cos(z) * (y * y + z * z + 1) ** 1.5)


def gradient_by_hand(x, y, z):
    """d/dx, d/dy, d/dz of the summand, derived on paper."""
    r = y * y + z * z + 1
    return (y * np.cos(x * y) * np.exp(-z) + 2 * x / (1 + x * x) * np.tanh(y),
            x * np.cos(x * y) * np.exp(-z) + np.log(1 + x * x) / np.cosh(y) ** 2 + 3 * y * np.cos(z) * r ** 0.5,
            -np.sin(x * y) * np.exp(-z) - np.sin(z) * r ** 1.5 + 3 * z * np.cos(z) * r ** 0.5)


MAIN_C = r"""/* main.c: fill the points, call the exported function, print the value and the gradient. */
#include <stdio.h>
#include "w1_formula.h"

static double x[W1_FORMULA_N], y[W1_FORMULA_N], z[W1_FORMULA_N];
static double grad_x[W1_FORMULA_N], grad_y[W1_FORMULA_N], grad_z[W1_FORMULA_N];

int main(void) {
    double value;
    for (long i = 0; i < W1_FORMULA_N; i++) {
        x[i] = (double)(i * 37 % 101) / 50.0 - 1.0;
        y[i] = (double)(i * 53 % 97) / 48.0 - 1.0;
        z[i] = (double)(i * 71 % 89) / 44.0 - 1.0;
    }
    if (w1_formula_value_and_grad(W1_FORMULA_N, x, y, z, &value, grad_x, grad_y, grad_z) != 0) {
        fprintf(stderr, "w1_formula_value_and_grad: wrong number of points\n");
        return 1;
    }
    printf("%.17g\n", value);
    for (long i = 0; i < W1_FORMULA_N; i++)
        printf("%.17g %.17g %.17g\n", grad_x[i], grad_y[i], grad_z[i]);
    return 0;
}
"""

symgrad.manual_seed(0)
try:
    compiler = find_compiler()
except CompilerNotFoundError as err:
    sys.exit(f"examples/export_c.py needs a C compiler: {err}")

# the points main.c fills in, computed the same way (each step is one correctly rounded operation)
i = np.arange(10_000)
x, y, z = (i * 37 % 101) / 50.0 - 1.0, (i * 53 % 97) / 48.0 - 1.0, (i * 71 % 89) / 44.0 - 1.0

folder = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
folder.mkdir(parents=True, exist_ok=True)
exported = symgrad.export(w1_formula, x, y, z, argnums=(0, 1, 2), target="c", path=folder / "w1_formula.c",
                          overwrite=True)
print(f"wrote {' and '.join(p.name for p in exported.paths)}, verified at {exported.points_checked} points")
print(next(line for line in exported.sources[".h"].splitlines() if "w1_formula_value_and_grad(" in line))
(folder / "main.c").write_text(MAIN_C)

recommended = ["-O2", "-fopenmp", "-fno-math-errno", "-ffp-contract=off"]  # the header's "Build:" line
sources = ["-o", "w1_demo", "main.c", "w1_formula.c", "-lm"]
build = subprocess.run(compiler + recommended + sources, cwd=folder, capture_output=True, text=True)
if build.returncode == 0:
    note = "(any C compiler builds it plainly too, on one thread: cc -O2 -o w1_demo main.c w1_formula.c -lm)"
else:  # a compiler without OpenMP: the plain build computes the same, to rounding, on one thread
    build = subprocess.run(compiler + ["-O2"] + sources, cwd=folder, capture_output=True, text=True)
    if build.returncode != 0:
        sys.exit(f"building main.c failed:\n{build.stderr}")
    note = "(this compiler has no OpenMP: built plainly, on one thread)"
print("build:", " ".join([Path(compiler[0]).name, *build.args[1:]]))
print(note)

printed = subprocess.run([str(folder / "w1_demo")], capture_output=True, text=True, check=True).stdout.split("\n")
c_value = float(printed[0])
c_grads = np.array([line.split() for line in printed[1:] if line], dtype=float).T

value, grads = symgrad.value_and_grad(w1_formula, argnums=(0, 1, 2))(x, y, z)
by_hand = gradient_by_hand(x, y, z)
print(f"{'':10}{'C program':>22}{'symgrad':>22}{'by hand':>22}")
print(f"{'value':10}{c_value:22.15g}{float(value):22.15g}{value_by_hand(x, y, z):22.15g}")
for name, c, s, h in zip(("grad_x[1]", "grad_y[1]", "grad_z[1]"), c_grads, grads, by_hand):
    print(f"{name:10}{c[1]:22.15g}{s[1]:22.15g}{h[1]:22.15g}")
print("C value equals symgrad's (rtol 1e-12):", bool(np.isclose(c_value, value, rtol=1e-12, atol=0)))
print("C gradient equals symgrad's at all 10,000 points (rtol 1e-12):",
      all(np.allclose(c, s, rtol=1e-12, atol=1e-12) for c, s in zip(c_grads, grads)))
print("C gradient equals the hand-derived one at all 10,000 points (rtol 1e-12):",
      all(np.allclose(c, h, rtol=1e-12, atol=1e-12) for c, h in zip(c_grads, by_hand)))
