"""``literalinclude`` with a ``:no-docstring:`` option, for source shown under its autodoc entry.

The method pages document a function twice over: ``autofunction`` renders its docstring, and a
``literalinclude`` with ``:pyobject:`` shows its code, pulled from the package. Without this
option the code block repeats the docstring the reader has just read. With it, the lines of the
object's docstring are left out of the block (computed from the source at build time, so the
block follows the code as it changes); everything else works as Sphinx's own directive.
"""

import ast
import textwrap

from sphinx.directives.code import LiteralInclude
from docutils.parsers.rst import directives


def docstring_lines(filename, pyobject):
    """First and last line of ``pyobject``'s docstring, counted from the object's first line
    as ``literalinclude``'s ``:pyobject:`` cuts it (1-based), or None if it has none."""
    from sphinx.pycode import ModuleAnalyzer

    tags = ModuleAnalyzer.for_file(filename, "").find_tags()
    if pyobject not in tags:
        return None
    _, start, end = tags[pyobject]
    with open(filename, encoding="utf-8") as f:
        lines = f.read().splitlines()[start - 1:end]
    node = ast.parse(textwrap.dedent("\n".join(lines))).body[0]
    body = getattr(node, "body", None)
    if not body or not isinstance(body[0], ast.Expr):
        return None
    value = body[0].value
    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
        return None
    return body[0].lineno, body[0].end_lineno


class SourceInclude(LiteralInclude):
    option_spec = {**LiteralInclude.option_spec, "no-docstring": directives.flag}

    def run(self):
        if "no-docstring" in self.options:
            if "pyobject" not in self.options:
                raise self.error(":no-docstring: needs :pyobject:")
            if "lines" in self.options:
                raise self.error(":no-docstring: cannot be combined with :lines:")
            _, filename = self.env.relfn2path(self.arguments[0])
            span = docstring_lines(filename, self.options["pyobject"])
            if span is None:
                raise self.error(f":no-docstring: {self.options['pyobject']} in "
                                 f"{self.arguments[0]} has no docstring")
            first, last = span
            self.options["lines"] = f"1-{first - 1},{last + 1}-"
        return super().run()


def setup(app):
    app.add_directive("literalinclude", SourceInclude, override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
