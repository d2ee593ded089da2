# The test replaces PIDS_FILE with a path of its own, to check afterwards that nothing is left running.
import os
import time

import pygame

pygame.init()
screen = pygame.display.set_mode((400, 600))
if os.fork() == 0:
    with open("PIDS_FILE", "a") as f:
        f.write(f"{os.getpid()}\n")
    while True:
        time.sleep(1)
with open("PIDS_FILE", "a") as f:
    f.write(f"{os.getpid()}\n")
time.sleep(3600)
