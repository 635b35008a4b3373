import pytest

from cnnkit.config import ConfigError, TrainConfig, load_config_file, to_toml


def test_defaults_validate():
    cfg = TrainConfig().validate()
    assert cfg.data == "bundled" and cfg.epochs == 5 and cfg.lr is None


def test_toml_file_flat_and_table(tmp_path):
    flat = tmp_path / "a.toml"
    flat.write_text('epochs = 3\nmodel = "simple-cnn"\nimage_size = [32, 32]\n')
    table = tmp_path / "b.toml"
    table.write_text('[train]\nepochs = 4\nlr = 0.01\n')
    assert TrainConfig.from_dict(load_config_file(flat)).image_size == [32, 32]
    cfg = TrainConfig.from_dict(load_config_file(table))
    assert cfg.epochs == 4 and cfg.lr == 0.01


def test_yaml_file(tmp_path):
    pytest.importorskip("yaml")
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 2\nbatch_size: 16\naugment: flip\n")
    cfg = TrainConfig.from_dict(load_config_file(f))
    assert (cfg.epochs, cfg.batch_size, cfg.augment) == (2, 16, "flip")


def test_command_line_wins_over_file(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text("epochs = 9\nbatch_size = 16\n")
    cfg = TrainConfig().update(load_config_file(f)).update({"epochs": 2})
    assert cfg.epochs == 2 and cfg.batch_size == 16


def test_unknown_setting_lists_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"epoch": 3}, "run.toml")
    text = str(err.value)
    assert "unknown setting 'epoch'" in text and "Did you mean epochs" in text
    assert "batch_size" in text  # the valid list


def test_bad_values_are_refused():
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0).validate()
    with pytest.raises(ConfigError, match="val_split"):
        TrainConfig(val_split=1.5).validate()
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="warp").validate()
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig.from_dict({"batch_size": "many"})


def test_strings_are_coerced():
    cfg = TrainConfig.from_dict({"image_size": "64,48", "pretrained": "true", "lr": "3e-4"})
    assert cfg.image_size == [64, 48] and cfg.pretrained is True and cfg.lr == 3e-4


def test_toml_round_trip(tmp_path):
    cfg = TrainConfig(epochs=7, image_size=[32, 32], augment="flip,crop=4", lr=0.05).validate()
    f = tmp_path / "x.toml"
    f.write_text(to_toml(cfg))
    assert TrainConfig.from_dict(load_config_file(f)).validate() == cfg


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(bad)
    other = tmp_path / "x.ini"
    other.write_text("")
    with pytest.raises(ConfigError, match=".toml"):
        load_config_file(other)
