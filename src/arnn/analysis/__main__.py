"""`python -m arnn.analysis <name> [options]`: run one analysis; each module's `main(argv)` parses its own options."""

import importlib
import sys

from arnn.errors import exit_on_user_error

ANALYSES = {
    "jacobian": ("arnn.analysis.jacobian", "eigenvalue magnitudes of the end-to-end Jacobian dh_T/dh_0"),
    "gradient_flow": ("arnn.analysis.gradient_flow", "gradient norm ||dL/dh_t|| over time t"),
    "phase_portrait": (
        "arnn.analysis.phase_portrait",
        "2-D vanilla vs antisymmetric RNN trajectories (Chang et al., ICLR 2019, Fig. 1)",
    ),
    "ode_norm": (
        "arnn.analysis.ode_norm",
        "linear antisymmetric ODE keeps ||x||; forward Euler does not (Nestaas, 2022 notes)",
    ),
    "gradient_bound": (
        "arnn.analysis.gradient_bound",
        "||dL/dθ|| <= int ||y|| dt = T ||y(t1)|| on trained ODE-ARNNs: which half holds (Nestaas, 2022 notes, (30))",
    ),
    "gradient_cancellation": (
        "arnn.analysis.gradient_cancellation",
        "W(t+T/2) = -W(t): dL/db = int y dt vanishes while ||y|| stays constant (Nestaas, 2022 notes)",
    ),
    "ode_linearity": (
        "arnn.analysis.ode_linearity",
        "x' = (A(t) - A(t)^T) x, A' = g(A): x(t) = Q_t x(0), Q_t orthogonal, superposition holds (Nestaas, 2022 notes)",
    ),
    "urnn_equivalence": (
        "arnn.analysis.urnn_equivalence",
        "contractive ReLU RNN as a 2n-state URNN (Emami et al., NeurIPS 2019, Thm 1)",
    ),
    "sigmoid_gap": (
        "arnn.analysis.sigmoid_gap",
        "URNN fits of a sigmoid RNN keep a residual (Emami et al., NeurIPS 2019, Thm 3)",
    ),
    "sysid_units": (
        "arnn.analysis.sysid_units",
        "test R² vs hidden units from a sysid multirun (Emami et al., NeurIPS 2019, Figs. 2-3)",
    ),
    "unitarity_drift": (
        "arnn.analysis.unitarity_drift",
        "a gradient step on B of W = exp(B) keeps W orthogonal; one on W leaves the group (Chu, 2024 slides)",
    ),
}


def usage() -> str:
    width = max(map(len, ANALYSES))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in ANALYSES.items()]
    return "usage: python -m arnn.analysis <name> [options]   (<name> --help for its options)\n" + "\n".join(lines)


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    name, *options = argv
    if name not in ANALYSES:
        sys.exit(f"error: unknown analysis {name!r}\n{usage()}")
    module = importlib.import_module(ANALYSES[name][0])
    exit_on_user_error(module.main, options)


if __name__ == "__main__":
    main(sys.argv[1:])
