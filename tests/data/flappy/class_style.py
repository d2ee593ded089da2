# Class style: a flap SETS the speed (no acceleration), the bird is always a circle (random dark colour),
# the land always brown, the pipes always green, the score in the top LEFT, the background random and light
# but never light blue, only Esc quits (q does nothing); events read through pygame.event.poll().
import random
import sys

import pygame

W, H = 480, 640


class Bird:
    def __init__(self):
        self.x, self.y, self.v = 100, H // 2, 0.0
        self.color = random.choice([(30, 30, 90), (90, 20, 20), (20, 70, 20)])

    def flap(self):
        self.v = -7.5

    def update(self):
        self.v += 0.45
        self.y += self.v

    def draw(self, surf):
        pygame.draw.circle(surf, self.color, (self.x, int(self.y)), 14)

    def rect(self):
        return pygame.Rect(self.x - 14, int(self.y) - 14, 28, 28)


class Pipe:
    GAP = 180

    def __init__(self, x):
        self.x = x
        self.top = random.randint(80, H - 100 - self.GAP - 40)
        self.counted = False

    def draw(self, surf):
        pygame.draw.rect(surf, (0, 90, 0), (self.x, 0, 64, self.top))
        pygame.draw.rect(surf, (0, 90, 0), (self.x, self.top + self.GAP, 64, H - 100 - self.top - self.GAP))

    def hits(self, r):
        return r.colliderect((self.x, 0, 64, self.top)) or r.colliderect(
            (self.x, self.top + self.GAP, 64, H - 100 - self.top - self.GAP))


class Game:
    def __init__(self):
        pygame.init()
        self.screen = pygame.display.set_mode((W, H))
        self.clock = pygame.time.Clock()
        self.font = pygame.font.Font(None, 40)
        self.best = 0
        self.reset()

    def reset(self):
        self.bg = random.choice([(255, 250, 205), (255, 228, 225), (240, 255, 240), (250, 240, 230)])
        self.bird = Bird()
        self.pipes = [Pipe(W + 60), Pipe(W + 300)]
        self.score = 0
        self.over = False

    def handle(self):
        event = pygame.event.poll()
        while event.type != pygame.NOEVENT:
            if event.type == pygame.QUIT:
                sys.exit()
            if event.type == pygame.KEYDOWN:
                if event.key == pygame.K_ESCAPE:
                    pygame.quit()
                    sys.exit()
                if event.key == pygame.K_SPACE:
                    if self.over:
                        self.reset()
                    else:
                        self.bird.flap()
            event = pygame.event.poll()

    def step(self):
        if self.over:
            return
        self.bird.update()
        for p in self.pipes:
            p.x -= 3
            if not p.counted and p.x + 64 < self.bird.x - 14:
                p.counted = True
                self.score += 1
            if p.hits(self.bird.rect()):
                self.over = True
        if self.pipes[0].x < -64:
            self.pipes.pop(0)
            self.pipes.append(Pipe(self.pipes[-1].x + 240))
        if self.bird.y + 14 > H - 100 or self.bird.y < 0:
            self.over = True
        if self.over:
            self.best = max(self.best, self.score)

    def draw(self):
        self.screen.fill(self.bg)
        for p in self.pipes:
            p.draw(self.screen)
        pygame.draw.rect(self.screen, (110, 70, 30), (0, H - 100, W, 100))
        self.bird.draw(self.screen)
        self.screen.blit(self.font.render(str(self.score), True, (0, 0, 0)), (15, 15))
        if self.over:
            msg = self.font.render(f"High score: {self.best}", True, (0, 0, 0))
            self.screen.blit(msg, msg.get_rect(center=(W // 2, H // 2)))
        pygame.display.update()

    def run(self):
        while True:
            self.handle()
            self.step()
            self.draw()
            self.clock.tick(60)


if __name__ == "__main__":
    Game().run()
