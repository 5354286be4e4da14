"""``python -m autonuma_jax [hydra overrides]``: the same as the ``autonuma-sim`` console script."""
from autonuma_jax.cli.app import main

if __name__ == "__main__":
    main()
