"""Mutations of resume, fingerprints, the run plan, user errors and fault handling."""
from mutations import Mutation

DRIFT = "tests/test_main.py::test_rerun_under_other_settings_is_refused_or_grouped_apart"

MUTATIONS = [
    Mutation("resume_ignores_start_batch", "a resumed run restarts its epoch from batch 0",
             "dmr/train/loop.py", "start=start_batch if epoch == start_epoch else 0", "start=0",
             ("tests/test_resume.py",)),
    Mutation("checkpoint_no_model_lock", "two processes train the same model at once",
             "dmr/checkpoint.py", "    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)\n",
             "    pass\n",
             ("tests/test_faults.py::test_two_processes_on_one_model_one_trains_the_other_waits",)),
    Mutation("record_without_fingerprint", "records do not carry the run's fingerprint",
             "dmr/results.py", 'record["fingerprint"] = _fingerprint', "pass", (DRIFT,)),
    Mutation("drift_not_refused", "a rerun under other settings reuses the workdir silently",
             "dmr/main.py", 'if theirs is None or theirs["digest"] == ours["digest"]:',
             "if True:", (DRIFT,)),
    Mutation("seed_in_fingerprint", "the seed naming a sweep's models splits its workdir",
             "dmr/fingerprint.py", '"models_per_size", "seed", ', '"models_per_size", ',
             ("tests/test_fingerprint.py",)),
    Mutation("plan_assumes_vaegans", "a run that needs missing VAE-GANs starts anyway",
             "dmr/plan.py", 'if "manifolds" in stages or all(', "if True or all(",
             ("tests/test_main.py::test_a_run_that_cannot_finish_is_refused_before_any_work",)),
    Mutation("user_error_traceback", "user errors end in a traceback", "dmr/main.py",
             "    if user_error is None:\n      raise\n", "    raise\n",
             ("tests/test_main.py::test_user_errors_print_one_line_and_exit_2",
              "tests/test_faults.py::test_disk_full_stops_with_one_line_and_keeps_results")),
    Mutation("corrupt_results_unnamed", "a corrupt results.json ends in a bare JSONDecodeError",
             "dmr/results.py", "except (json.JSONDecodeError, UnicodeDecodeError) as e:",
             "except UnicodeDecodeError as e:",
             ("tests/test_main.py::test_corrupt_results_json_is_named_with_the_way_out",)),
    Mutation("failed_write_leaves_temporary", "a failed results.json write leaves its temporary "
             "file", "dmr/results.py", "      os.remove(tmp)\n", "      pass\n",
             ("tests/test_faults.py::test_failed_results_write_keeps_the_previous_file",)),
    Mutation("no_disk_room_check", "a run starts without room for its checkpoints",
             "dmr/plan.py", "  if needed > free:", "  if False:",
             ("tests/test_faults.py::test_unwritable_workdir_is_refused_before_any_work",)),
    Mutation("stage_time_not_recorded", "profile.json misses the stages' times", "dmr/main.py",
             '"stages": seconds,', '"stages": {},', (DRIFT,)),
]
