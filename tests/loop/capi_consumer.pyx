# cython: language_level=3
# A stand-in for _vrrp.pyx: another compiled module that cimports the loop's C API and
# runs a self-rearming "advert" timer and a reader whose callbacks never enter Python.
# Built by test_capi.py::test_cimport_from_another_module.

from libc.stdint cimport uint32_t
from fastka._loop cimport (Loop, fk_io, fk_io_start, fk_io_stop, fk_now, fk_timer,
                           fk_timer_active, fk_timer_init, fk_timer_start, fk_timer_stop)

cdef extern from "<sys/socket.h>" nogil:
    long recv(int fd, void *buf, size_t n, int flags)


cdef void advert(fk_timer *t, void *data) noexcept:
    cdef Advertiser a = <Advertiser>data
    a.sent += 1
    fk_timer_start(a.loop, t, t.when + a.interval)   # base + k*interval: no drift


cdef void readable(fk_io *io, uint32_t events, void *data) noexcept:
    cdef Advertiser a = <Advertiser>data
    cdef char buf[256]
    if recv(io.fd, buf, sizeof(buf), 0) > 0:
        a.received += 1
        # a valid advert from the master: re-arm the master-down timer
        fk_timer_start(a.loop, &a.down, fk_now(a.loop) + a.down_interval)


cdef void master_down(fk_timer *t, void *data) noexcept:
    (<Advertiser>data).down_fired += 1


cdef class Advertiser:
    cdef Loop loop
    cdef fk_timer timer
    cdef fk_timer down
    cdef fk_io io
    cdef double interval
    cdef double down_interval
    cdef public long sent, received, down_fired

    def __cinit__(self, Loop loop, double interval, double down_interval):
        self.loop = loop
        self.interval = interval
        self.down_interval = down_interval
        fk_timer_init(&self.timer, advert, <void *>self)
        fk_timer_init(&self.down, master_down, <void *>self)
        self.io.loop = NULL

    def start(self, double first, int fd):
        fk_timer_start(self.loop, &self.timer, first)
        fk_timer_start(self.loop, &self.down, fk_now(self.loop) + self.down_interval)
        if fk_io_start(self.loop, &self.io, fd, 1, readable, <void *>self) < 0:  # EPOLLIN
            raise OSError("fk_io_start failed")

    def stop(self):
        fk_timer_stop(&self.timer)
        fk_timer_stop(&self.down)
        fk_io_stop(&self.io)

    @property
    def next_advert(self):
        return self.timer.when if fk_timer_active(&self.timer) else None

    def __dealloc__(self):
        fk_timer_stop(&self.timer)
        fk_timer_stop(&self.down)
        fk_io_stop(&self.io)
