"""Mutations of the TensorBoard writer, the training loop's logging and the public loaders."""
from mutations import Mutation

MUTATIONS = [
    Mutation("tensorboard_no_purge", "a resumed run leaves the interrupted run's later events",
             "dmr/train/loop.py", "purge_step=step + 1)", "purge_step=None)",
             ("tests/test_tensorboard.py",)),
    Mutation("tensorboard_learning_rate_late", "the logged rate is the next update's",
             "dmr/train/loop.py", "learning_rate(step - 1)", "learning_rate(step)",
             ("tests/test_tensorboard.py",)),
    Mutation("tensorboard_finished_run_purges", "rerunning a finished model opens a writer",
             "dmr/train/loop.py", "if tensorboard_dir and step < total_steps:",
             "if tensorboard_dir:", ("tests/test_tensorboard.py",)),
    Mutation("tensorboard_files_collide", "two writers of one second share one event file",
             "dmr/tensorboard.py", "filename_suffix=suffix)", "filename_suffix=\"\")",
             ("tests/test_tensorboard.py",)),
    Mutation("tensorboard_every_process", "every process writes event files",
             "dmr/tensorboard.py", "    if jax.process_index() == 0:\n      import tensorboardX",
             "    if True:\n      import tensorboardX", ("tests/test_tensorboard.py",)),
    Mutation("loader_untrained", "load_classifier returns the untrained model",
             "dmr/loaders.py",
             "  return classifier.load(classifier.model_dir(workdir, variant, n, seed),",
             "  ds = run.load_dataset()\n"
             "  model, _, like = classifier.initial_state(run.classifier, ds, n, jax.random.key(0))\n"
             "  from dmr.train import steps\n"
             "  return steps.make_logits_fn(model, like.params, like.batch_stats)\n"
             "  return classifier.load(classifier.model_dir(workdir, variant, n, seed),",
             ("tests/test_loaders.py",)),
]
