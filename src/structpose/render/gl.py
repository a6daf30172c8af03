"""Headless OpenGL rasterisation of a lit, coloured triangle mesh (moderngl on an EGL context).

One context per process, created on first use (never at import): with Mesa's llvmpipe this is a software
rasteriser on the CPU (``LP_NUM_THREADS`` sets its threads); a GPU driver works the same. Vertices arrive
already projected (the lens distortion is applied per vertex by the caller), as clip coordinates whose
``w`` is the camera depth, so colours are interpolated perspective-correctly. Anti-aliasing: the mesh is
drawn at twice the output resolution into a half-float target, then box-filtered 2 x 2 on the GPU (one
bilinear tap at each block's centre) -- the capsule renderer's 2 x 2 supersampling; on llvmpipe this is
about twice as fast as 4x multisampling. What comes back is premultiplied RGB and coverage (alpha), ready
to be laid over a background: ``image = rgb + (1 - alpha) * background``.

Byte-identical images are promised on one machine only: software rasterisers may differ across CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from structpose.errors import ConfigError

#: Packages that provide a software EGL/OpenGL on Debian/Ubuntu.
MESA_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri"
SUPERSAMPLE = 2  # drawn at this many times the output resolution along each axis, then box-filtered

_VERTEX = """
#version 330
in vec4 in_clip;
in vec3 in_normal;
in vec3 in_colour;
in vec3 in_rest;
in float in_pattern;
in float in_part;
out vec3 v_normal;
out vec3 v_colour;
out vec3 v_rest;
out float v_pattern;
out float v_depth;
flat out int v_part;
void main() {
    gl_Position = in_clip;
    v_normal = in_normal;
    v_colour = in_colour;
    v_rest = in_rest;
    v_pattern = in_pattern;
    v_depth = in_clip.w;
    v_part = int(in_part + 0.5);
}
"""

_FRAGMENT = """
#version 330
in vec3 v_normal;
in vec3 v_colour;
in vec3 v_rest;
in float v_pattern;
in float v_depth;
flat in int v_part;
uniform vec3 light_dir;     // unit, towards the light, camera frame
uniform vec3 light_colour;
uniform float ambient;
uniform float diffuse;
uniform int pattern_kind;   // 0 none, 1 horizontal stripes, 2 dots, 3 diagonal stripes
uniform float pattern_period;  // mm, in the body's rest frame
uniform vec3 pattern_colour;
uniform int maps;           // 1: write (depth, part, 1, 1) instead of colour
out vec4 f_colour;
void main() {
    if (maps == 1) {
        f_colour = vec4(v_depth, float(v_part), 1.0, 1.0);
        return;
    }
    vec3 colour = v_colour;
    if (pattern_kind > 0 && v_pattern > 0.5) {
        float k = 6.2831853 / pattern_period;
        float s;
        if (pattern_kind == 1) s = sin(k * v_rest.z);
        else if (pattern_kind == 2) s = sin(k * v_rest.z) * sin(k * (v_rest.x + v_rest.y));
        else s = sin(k * (v_rest.x + 0.5 * v_rest.y));
        if (s > 0.3) colour = pattern_colour;
    }
    vec3 n = normalize(v_normal);
    float lambert = max(dot(n, light_dir), 0.0);
    f_colour = vec4(colour * (ambient + diffuse * lambert) * light_colour, 1.0);
}
"""


_DOWNSAMPLE_VERTEX = """
#version 330
in vec2 in_corner;
void main() { gl_Position = vec4(in_corner, 0.0, 1.0); }
"""

_DOWNSAMPLE_FRAGMENT = """
#version 330
uniform sampler2D hi;
uniform float size;
out vec4 f_colour;
void main() { f_colour = texture(hi, gl_FragCoord.xy / size); }  // the centre of a 2 x 2 block: its mean
"""


@dataclass(frozen=True)
class Shading:
    """Per-image shading uniforms: a directional light plus ambient (camera frame), and one clothing
    pattern (``kind`` 0 none, 1 horizontal stripes, 2 dots, 3 diagonal stripes; ``period`` mm in the
    body's rest frame; drawn where a vertex's ``pattern`` attribute is 1)."""

    light_dir: np.ndarray
    light_colour: np.ndarray
    ambient: float
    diffuse: float
    pattern_kind: int = 0
    pattern_period: float = 100.0
    pattern_colour: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Frame:
    """What one draw returns: ``rgb`` (S, S, 3) float32 premultiplied colour, ``alpha`` (S, S) float32
    coverage in [0, 1]; with maps, ``depth`` (S, S) float32 camera depth mm (``inf`` off the body) and
    ``part`` (S, S) int8 part index (-1 off the body), sampled at pixel centres without multisampling.
    Rows run top to bottom (image order)."""

    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray | None = None
    part: np.ndarray | None = None


@lru_cache(maxsize=1)
def context():
    """The process's OpenGL context (EGL, headless), created once. Raises ConfigError naming what to install
    when moderngl or an EGL driver is missing."""
    try:
        import moderngl
    except ImportError as err:
        raise ConfigError(
            "the mesh renderer needs moderngl (a dependency of structpose): pip install moderngl (or use --renderer "
            "capsule)"
        ) from err
    try:
        return moderngl.create_standalone_context(backend="egl")
    except Exception as err:  # noqa: BLE001 -- glcontext raises plain Exceptions for a missing libEGL/driver
        raise ConfigError(
            f"no headless OpenGL context (EGL): {err}. Install Mesa's EGL and GL drivers "
            f"(Debian/Ubuntu: apt-get install {MESA_PACKAGES}), or use --renderer capsule"
        ) from err


class MeshRaster:
    """Draws one mesh topology (``faces`` (F, 3) int) into ``size`` x ``size`` images, reusing its GL objects."""

    def __init__(self, faces: np.ndarray, num_vertices: int, size: int):
        ctx = context()
        self.ctx, self.size, self.num_vertices = ctx, int(size), int(num_vertices)
        self.program = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self.vbo = ctx.buffer(reserve=num_vertices * 15 * 4)
        self.ibo = ctx.buffer(np.ascontiguousarray(faces, dtype=np.int32).tobytes())
        names = ("in_clip", "in_normal", "in_colour", "in_rest", "in_pattern", "in_part")
        layout = (self.vbo, "4f 3f 3f 3f 1f 1f", *names)
        self.vao = ctx.vertex_array(self.program, [layout], index_buffer=self.ibo, index_element_size=4)
        s, big = (self.size, self.size), (self.size * SUPERSAMPLE, self.size * SUPERSAMPLE)
        self.hi_colour = ctx.texture(big, 4, dtype="f2")
        self.hi_colour.filter = (ctx.LINEAR, ctx.LINEAR)
        self.hi = ctx.framebuffer([self.hi_colour], ctx.depth_renderbuffer(big))
        self.down = ctx.program(vertex_shader=_DOWNSAMPLE_VERTEX, fragment_shader=_DOWNSAMPLE_FRAGMENT)
        self.down["size"].value = float(self.size)
        corners = ctx.buffer(np.array([-1, -1, 3, -1, -1, 3], dtype=np.float32).tobytes())  # one big triangle
        self.down_vao = ctx.vertex_array(self.down, [(corners, "2f", "in_corner")])
        self.lo = ctx.framebuffer([ctx.renderbuffer(s, 4, dtype="f4")])
        self.single = ctx.framebuffer([ctx.renderbuffer(s, 4, dtype="f4")], ctx.depth_renderbuffer(s))

    def draw(self, vertices: np.ndarray, shading: Shading, maps: bool = False) -> Frame:
        """Rasterise one posed mesh.

        Args:
            vertices: (V, 15) float32 rows ``clip x, y, z, w | normal (camera frame) | colour | rest position
                (mm) | pattern flag | part index``.
            shading: the light and the clothing pattern.
            maps: also return depth and part maps.
        """
        if vertices.shape != (self.num_vertices, 15):
            raise ValueError(f"expected ({self.num_vertices}, 15) vertex rows, got {vertices.shape}")
        ctx, prog = self.ctx, self.program
        self.vbo.write(np.ascontiguousarray(vertices, dtype=np.float32).tobytes())
        prog["light_dir"].value = tuple(float(v) for v in shading.light_dir)
        prog["light_colour"].value = tuple(float(v) for v in shading.light_colour)
        prog["ambient"].value, prog["diffuse"].value = float(shading.ambient), float(shading.diffuse)
        prog["pattern_kind"].value = int(shading.pattern_kind)
        prog["pattern_period"].value = float(shading.pattern_period)
        prog["pattern_colour"].value = tuple(float(v) for v in shading.pattern_colour)
        ctx.enable(ctx.DEPTH_TEST | ctx.CULL_FACE)  # back faces culled: the bank's faces wind counter-clockwise
        ctx.front_face = "ccw"
        prog["maps"].value = 0
        self.hi.use()
        self.hi.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self.vao.render()
        ctx.disable(ctx.DEPTH_TEST)
        self.lo.use()
        self.hi_colour.use(0)
        self.down_vao.render()
        ctx.enable(ctx.DEPTH_TEST)
        rgba = np.frombuffer(self.lo.read(components=4, dtype="f4"), np.float32)
        rgba = rgba.reshape(self.size, self.size, 4)[::-1]
        rgb, alpha = rgba[..., :3], rgba[..., 3]  # colours >= 0 and coverage in [0, 1] by construction
        if not maps:
            return Frame(rgb, alpha)
        prog["maps"].value = 1
        self.single.use()
        self.single.clear(np.inf, -1.0, 0.0, 0.0, depth=1.0)
        self.vao.render()
        m = np.frombuffer(self.single.read(components=4, dtype="f4"), np.float32).reshape(self.size, self.size, 4)
        m = m[::-1]
        return Frame(rgb, alpha, m[..., 0].copy(), np.rint(m[..., 1]).astype(np.int8))
