"""The OPD link plugin loads through its entry point and checks its settings."""

from caseforum.plugin_host import PluginHost


def test_loads_from_entry_point_with_defaults() -> None:
    host = PluginHost({})
    host.load(defaults=())
    record = host.records["opd_link"]
    assert record.state == "enabled"
    assert record.source == "entry point"
    assert record.config["retries"] == 2


def test_bad_setting_marks_the_plugin_failed_naming_the_field() -> None:
    host = PluginHost({"opd_link": {"timeout_seconds": -1}})
    host.load(defaults=())
    record = host.records["opd_link"]
    assert record.state == "failed"
    assert "plugins.opd_link.timeout_seconds" in record.error
    assert not host.pm.has_plugin("opd_link")
