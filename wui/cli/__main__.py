from wui.cli import main

main()
