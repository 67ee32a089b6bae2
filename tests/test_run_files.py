"""How records and tables name run directories (csim.runs.files.shown_dir)."""


def test_run_directories_are_shown_relative_to_the_project(tmp_path, monkeypatch):
    """Records and tables name a run directory under the working directory as outputs/runs/..., not by this
    machine's absolute path; one elsewhere keeps its absolute path."""
    from csim.runs.files import shown_dir

    monkeypatch.chdir(tmp_path)
    assert shown_dir(str(tmp_path / "outputs" / "runs" / "x-1")) == "outputs/runs/x-1"
    assert shown_dir("/elsewhere/runs/x-1") == "/elsewhere/runs/x-1" and shown_dir(None) is None

