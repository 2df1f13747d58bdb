"""``snas compare`` (SC-SDC): sparse vs dense networks of the same capacity.

The command (:mod:`snas.compare.command`) is what the CLI finds here: ``HELP``,
``DESCRIPTION``, ``add_arguments(parser)``, ``run(args)``. Its parts: the plan
(:mod:`snas.compare.plan`: widths, factors, trial configs), the statistics
(:mod:`snas.compare.stats`: Wilcoxon, grouping), the report (:mod:`snas.compare.report`)
and the store callback (:mod:`snas.compare.callback`, imports Ray).
"""

from snas.compare.command import DESCRIPTION, HELP, add_arguments, run

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]
