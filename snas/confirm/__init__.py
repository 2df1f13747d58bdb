"""Confirmation: is a search's best vector better than the obvious allocations at equal
cost, over seeds, by more than the noise? (``snas confirm``, ``search.confirm``.)

- :mod:`snas.confirm.plan`: which vectors and seeds are trained;
- :mod:`snas.confirm.stats`: the summaries, the paired test and the verdict;
- :mod:`snas.confirm.command`: the command, running through :mod:`snas.runner`.
"""

from snas.confirm.command import DESCRIPTION, HELP, add_arguments, confirm_search, run

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "confirm_search", "run"]
