import pygame

pygame.init()
print("Flappy Bird would start here")
pygame.quit()
