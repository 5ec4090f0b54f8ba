"""Plumbing shared by :mod:`stiscube` and :mod:`cte`.

Modules: :mod:`~stores.common.validate` (argument validators),
:mod:`~stores.common.flags` (bit-flag registries), :mod:`~stores.common.provenance`
(the provenance record of every product), :mod:`~stores.common.progress` (opt-in
progress), :mod:`~stores.common.dates` (MJD <-> datetime64), :mod:`~stores.common.cli`
(command-line helpers), :mod:`~stores.common.environment` (``show_versions``) and
:mod:`~stores.common.testing` (seeded synthetic cubes).
"""
