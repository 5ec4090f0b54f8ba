"""Public home of the seeded synthetic cubes and the tree digest used by tests and examples."""

from stores._testing import example_coords, example_schema, example_slice, tree_digest

__all__ = ["example_coords", "example_schema", "example_slice", "tree_digest"]
