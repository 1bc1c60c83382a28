from stackd.cli.main import console

console()
