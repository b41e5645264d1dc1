"""``python -m unireplknet`` (also what ``torchrun -m unireplknet`` runs): the command line."""

from .cli import main

if __name__ == "__main__":
    main()
