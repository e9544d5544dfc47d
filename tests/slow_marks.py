"""The slow end-to-end checks, marked ``slow`` by name (tests/conftest.py takes the hook from here).

Each is a whole-process or real-server check (a training, a replay through the CLI, a kill -9, a
broker stopped for 30 s) that took >= ~8 s on a busy 2-core host (``--durations`` /
``--junitxml`` of a full run on main, 2026-12-04, beside a training job: these 34 took 1,000 of
the suite's 1,490 test-seconds). They still run in CI (``./run.sh test`` runs everything); a quick
run leaves them out, so together the two runs split the suite and no test is in both:

    ./run.sh test -m "not slow"    # the quick run (9 min 21 s on a busy 2-core host)
    ./run.sh test -m slow          # the end-to-end checks

The style, typing and layering checks (``tests/test_code_style.py``, ``tests/test_architecture.py``)
stay in the quick run on purpose. A new slow test is marked with ``@pytest.mark.slow`` in its file;
this list holds those measured before the mark existed.
"""

from __future__ import annotations

import pytest

SLOW = frozenset(
    {
        "tests/api/test_cli_errors.py::test_every_command_has_help",
        "tests/api/test_demo_smoke.py::test_demo_serves_the_line_and_stops_on_ctrl_c",
        "tests/api/test_recipes_cli.py::test_add_list_show_and_import",
        "tests/api/test_recipes_cli.py::test_bad_input_is_one_line_naming_the_file_or_field_and_stores_nothing",
        "tests/api/test_schemathesis.py::test_no_operation_answers_a_server_error",
        "tests/api/test_serve_push_e2e.py::test_pushed_frames_are_inspected_and_stored",
        "tests/bench/test_gpu_train.py::test_collect_gives_a_registrable_run_that_loads",
        "tests/bench/test_gpu_train.py::test_smoke_run_writes_the_outputs",
        "tests/camera/test_synth.py::test_random_scenes_never_overlap_boards",
        "tests/inspection/test_engine_e2e.py::test_every_board_once_at_other_speeds_and_spacings",
        "tests/inspection/test_engine_e2e.py::test_kill_9_mid_run_leaves_a_clean_database",
        "tests/inspection/test_engine_e2e.py::test_replay_inspects_every_board_exactly_once",
        "tests/inspection/test_reference_engine.py::test_a_board_that_cannot_be_aligned_is_stored_uncertain",
        "tests/inspection/test_reference_engine.py::test_reference_model_setups_that_cannot_work_are_refused",
        "tests/inspection/test_reference_engine.py::test_replay_compares_every_board_with_its_own_golden",
        "tests/inspection/test_reference_engine.py::test_replay_of_a_test_list_folder_and_of_one_split",
        "tests/inspection/test_shipped_weights.py::test_defect_model_onnx_and_torch_agree_on_real_boards",
        "tests/inspection/test_shipped_weights.py::test_export_parity_on_real_boards",
        "tests/inspection/test_shipped_weights.py::test_predict_with_runners_side_by_side_gives_the_same_lines_in_file_order",
        "tests/inspection/test_store_crash.py::test_sigkill_mid_run_keeps_every_committed_batch_whole",
        "tests/inspection/test_train_e2e.py::test_export_and_eval_offline",
        "tests/inspection/test_train_e2e.py::test_interrupted_run_resumes_to_the_planned_epochs",
        "tests/inspection/test_train_e2e.py::test_registering_a_new_version_never_changes_what_is_served",
        "tests/inspection/test_train_e2e.py::test_training_registers_a_model_with_a_card",
        "tests/sync/test_engine_events.py::test_replay_events_match_the_store_and_validate",
        "tests/sync/test_feed_reliability.py::test_a_consumer_away_for_10000_events_catches_up_over_sse_pull_and_websocket",
        "tests/sync/test_feed_reliability.py::test_a_stalled_or_slow_sse_client_does_not_slow_the_pipeline",
        "tests/sync/test_feed_reliability.py::test_kill_9_mid_flood_loses_and_repeats_nothing",
        "tests/sync/test_mqtt.py::test_broker_stopped_30s_mid_run_loses_nothing",
        "tests/sync/test_mqtt.py::test_last_will_says_offline",
        "tests/sync/test_nats.py::test_hub_after_a_crash_gets_unacked_events_again_in_order",
        "tests/sync/test_nats.py::test_hub_merges_two_edge_processes",
        "tests/sync/test_twin_consumer.py::test_consumer_refuses_a_gap_in_the_log",
        "tests/sync/test_twin_consumer.py::test_consumer_resumes_from_its_state_and_survives_a_server_kill",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("[", 1)[0] in SLOW:
            item.add_marker(pytest.mark.slow)
