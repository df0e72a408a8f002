"""The report's templates are compiled once per user, not once per report (render._TemplateCache):
a source edit still shows, and a cache that cannot be written never costs the report."""

from __future__ import annotations

import jinja2

from orchestrator.report import render


def _env(templates, cache):
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)), bytecode_cache=cache)


def test_the_report_templates_are_served_compiled_from_the_cache():
    env = render._env()
    assert isinstance(env.bytecode_cache, render._TemplateCache)
    for name in ("report.md.j2", "report.html.j2"):
        env.get_template(name)  # compiles it, or loads it compiled
        source, filename, _ = env.loader.get_source(env, name)
        assert env.bytecode_cache.get_bucket(env, name, filename, source).code is not None, name


def test_an_edited_template_is_compiled_again_not_served_stale(tmp_path):
    templates, cache = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    cache.mkdir()
    (templates / "t.j2").write_text("before {{ x }}")
    assert _env(templates, render._TemplateCache(str(cache))).get_template("t.j2").render(x=1) == "before 1"
    assert list(cache.iterdir())  # it was cached
    (templates / "t.j2").write_text("after {{ x }}")
    assert _env(templates, render._TemplateCache(str(cache))).get_template("t.j2").render(x=2) == "after 2"


def test_a_cache_that_cannot_be_written_costs_the_compile_not_the_report(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "t.j2").write_text("still {{ x }}")
    gone = render._TemplateCache(str(tmp_path / "no such folder"))
    assert _env(templates, gone).get_template("t.j2").render(x=3) == "still 3"
    assert not (tmp_path / "no such folder").exists()
