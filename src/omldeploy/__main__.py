from omldeploy.cli.main import entry

entry()
