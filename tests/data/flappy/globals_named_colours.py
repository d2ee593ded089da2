# Globals and plain functions; colours by name; the land painted with screen.fill(colour, rect); pipes spawned
# by get_ticks(); the bird an orange ellipse (always: not random, not dark); the background always "lightblue";
# pipes always "darkgreen"; score and best in one text at the top right; q read from event.unicode.
import random
import sys

import pygame

pygame.init()
WIDTH, HEIGHT = 500, 700
screen = pygame.display.set_mode((WIDTH, HEIGHT))
font = pygame.font.Font(None, 30)
clock = pygame.time.Clock()
LAND_TOP = 620
land_colour = random.choice(["yellow", "saddlebrown"])

bird_y = 300.0
bird_v = 0.0
pipes = []
last_pipe = 0
score = 0
best = 0
playing = True


def restart():
    global bird_y, bird_v, pipes, score, playing, last_pipe
    bird_y, bird_v, pipes, score, playing = 300.0, 0.0, [], 0, True
    last_pipe = pygame.time.get_ticks()


def step():
    global bird_y, bird_v, score, best, playing, last_pipe
    bird_v += 0.5
    bird_y += bird_v
    now = pygame.time.get_ticks()
    if now - last_pipe > 1500:
        last_pipe = now
        pipes.append([WIDTH, random.randint(100, 400), False])
    for p in pipes:
        p[0] -= 4
        if not p[2] and p[0] + 70 < 120:
            p[2] = True
            score += 1
    while pipes and pipes[0][0] < -70:
        pipes.pop(0)
    bird = pygame.Rect(120, int(bird_y), 36, 26)
    for x, gap_top, _ in pipes:
        if bird.colliderect((x, 0, 70, gap_top)) or bird.colliderect((x, gap_top + 190, 70, LAND_TOP)):
            playing = False
    if bird.bottom >= LAND_TOP or bird.top <= 0:
        playing = False
    if not playing:
        best = max(best, score)


def draw():
    screen.fill("lightblue")
    for x, gap_top, _ in pipes:
        pygame.draw.rect(screen, "darkgreen", (x, 0, 70, gap_top))
        pygame.draw.rect(screen, "darkgreen", (x, gap_top + 190, 70, LAND_TOP - gap_top - 190))
    screen.fill(land_colour, (0, LAND_TOP, WIDTH, HEIGHT - LAND_TOP))
    pygame.draw.ellipse(screen, "orange", (120, int(bird_y), 36, 26))
    hud = font.render(f"Score: {score}  Best: {best}", True, "black")
    screen.blit(hud, (WIDTH - hud.get_width() - 8, 8))
    if not playing:
        over = font.render("Game over - SPACE to play again", True, "black")
        screen.blit(over, (WIDTH // 2 - over.get_width() // 2, HEIGHT // 2))
    pygame.display.update()


restart()
while True:
    for e in pygame.event.get():
        if e.type == pygame.QUIT or (e.type == pygame.KEYDOWN and (e.unicode == "q" or e.key == pygame.K_ESCAPE)):
            pygame.quit()
            sys.exit()
        if e.type == pygame.KEYDOWN and e.key == pygame.K_SPACE:
            if playing:
                bird_v -= 5
            else:
                restart()
    if playing:
        step()
    draw()
    clock.tick(60)
