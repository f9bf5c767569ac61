// The evaluation time loop of RecurrentSNN's spiking networks (memristor_mat/models/snn.py), one
// weight draw at a time; the training time loops are at the end of the file. Python's loop steps every draw together: each of its elementwise updates
// streams the state of all draws (16 draws x 256 windows x 100 neurons: 1.6 MB a tensor) through
// memory once per operation. Here a draw's 250 steps run one after another, so its state (100 kB a
// tensor) stays in the core's cache, and the elementwise updates of a step are one pass. The
// readout's leaky double integrator runs in the loop too, with the running maximum over time that
// makes the logits, so no (T, draws, batch, classes) tensor is kept.
//
// The numbers are Python's, bit for bit (the tests compare them): the matrix products are torch's
// own (torch.bmm's, on one draw's rows: draw_product), but for the products of spikes (the readout's, the normalised
// network's spike recurrence), summed from the weights' rows as the product sums them where the
// caller's check finds so (spike_projection_rows); the elementwise
// updates are exactly rounded operations (sum,
// comparison, fused multiply-add) done as torch's CPU kernels do them: addcmul as one fused
// multiply-add, lerp as ATen's (aten/src/ATen/native/Lerp.h: start + w (end - start) for |w| < 0.5,
// else end - (1 - w)(end - start), each one fused multiply-add). Built with -ffp-contract=off, so
// the compiler fuses nothing else. The tanh twin's outputs go through at::tanh_, the kernel Python's
// loop calls on all the draws' state at once, here on one draw's (tanh has no exactly rounded form:
// the same numbers only where torch's tanh does not depend on an element's place in a tensor,
// which memristor_mat.models.spiking_loop checks before it lets this loop evaluate the twin).
//
// ATen and torch's operator registration only, no Python binding: with torch/extension.h (the
// whole C++ frontend and pybind11) and a pybind11 module the build took 51-52 s on a 2-core EPYC,
// against 20-23 s this way (ATen.h with torch's pybind11 casters: 30 s).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <c10/core/GradMode.h>
#include <torch/library.h>

#include <dlfcn.h>
#if defined(__AVX__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

namespace {

// A row's input current x_t W_in. From the product (``product``: its row), or from binary events
// with at most two per row (``events``): a sum of W_in's rows whose events are 1. With x in {0, 1}
// the product's terms are exact (W_in's entries or zeros) and at most two are nonzero, so every
// order of its sum gives the same nonzero values (w_a, or w_a + w_b rounded once; zeros added to a
// nonzero number leave it as it is): the values of the product without computing it. Only a zero's
// sign can differ, which no nonzero value, spike or logit depends on. (Delta-modulated ECG has at
// most one event per lead and step, UP or DN: two per row with two leads.)
struct RowInput {
  const float* a = nullptr;  // nullptr: no term, the current is 0
  const float* b = nullptr;  // nullptr: at most one term
};

// the terms of row ``i`` at step ``t``: events in x (batch, T, inputs) pick rows of w_in (inputs, H)
RowInput event_rows(const float* x, int64_t i, int64_t t, int64_t steps, int64_t inputs, const float* w_in,
                    int64_t size) {
  RowInput row;
  const float* events = x + (i * steps + t) * inputs;
  for (int64_t k = 0; k < inputs; ++k) {
    if (events[k] != 0.0f) {
      // the caller checked the events (RecurrentSNN._compiled_projected_activity); a third term
      // or a graded value would need the product's order of summation
      TORCH_CHECK(events[k] == 1.0f && row.b == nullptr, "sparse_events: the input must be binary events, "
                  "at most two per window and step");
      (row.a == nullptr ? row.a : row.b) = w_in + k * size;
    }
  }
  return row;
}

// original dynamics (SPEC §3.1), one row of one step: h_t = h_{t-1} V + x_t W_in; reset = 1[mem > thr];
// mem_t = beta mem_{t-1} + syn_{t-1} - thr reset; syn_t = alpha syn_{t-1} + h_t. The output: the
// reset (spiking), or the tanh twin's mem_{t-1} - thr, whose tanh the step takes afterwards
template <int kTerms, bool kSpiking>
void original_row(float* __restrict__ h, const float* __restrict__ a, const float* __restrict__ b,
                  float* __restrict__ syn, float* __restrict__ mem, float* __restrict__ out,
                  const float* __restrict__ alpha, const float* __restrict__ beta, float thr, int64_t size) {
#pragma GCC ivdep
  for (int64_t j = 0; j < size; ++j) {
    const float input = kTerms == 0 ? 0.0f : kTerms == 1 ? a[j] : a[j] + b[j];
    const float h_t = h[j] + input;
    const float m = mem[j], s = syn[j];
    const float reset = m > thr ? 1.0f : 0.0f;
    h[j] = h_t;
    out[j] = kSpiking ? reset : m - thr;
    mem[j] = std::fma(beta[j], m, s) - thr * reset;
    syn[j] = std::fma(alpha[j], s, h_t);
  }
}

// normalised dynamics, one row of one step: syn = alpha syn + x_t W_in + recurrent;
// mem = lerp(syn, mem, beta); spiking: out = 1[mem > thr], mem -= thr out; the tanh twin:
// out = mem - thr (its tanh taken afterwards), no reset
template <int kTerms, bool kSpiking>
void normalised_row(const float* __restrict__ recurrent, const float* __restrict__ a, const float* __restrict__ b,
                    float* __restrict__ syn, float* __restrict__ mem, float* __restrict__ out,
                    const float* __restrict__ alpha, const float* __restrict__ beta, float thr, int64_t size) {
#pragma GCC ivdep
  for (int64_t j = 0; j < size; ++j) {
    const float input = kTerms == 0 ? 0.0f : kTerms == 1 ? a[j] : a[j] + b[j];
    const float s = std::fma(alpha[j], syn[j], input) + recurrent[j];
    const float m = mem[j], w = beta[j];
    const float m_t = std::fabs(w) < 0.5f ? std::fma(w, m - s, s) : std::fma(w - 1.0f, m - s, m);
    syn[j] = s;
    if (kSpiking) {
      const float spike = m_t > thr ? 1.0f : 0.0f;
      out[j] = spike;
      mem[j] = m_t - thr * spike;
    } else {
      out[j] = m_t - thr;
      mem[j] = m_t;
    }
  }
}

// one step of one draw, row by row; ``input(i)`` gives row i's RowInput
template <bool kSpiking, typename Input>
void original_step(float* h, Input input, float* syn, float* mem, float* out, const float* alpha,
                   const float* beta, float thr, int64_t rows, int64_t size) {
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t o = i * size;
    const RowInput row = input(i);
    if (row.a == nullptr) {
      original_row<0, kSpiking>(h + o, nullptr, nullptr, syn + o, mem + o, out + o, alpha, beta, thr, size);
    } else if (row.b == nullptr) {
      original_row<1, kSpiking>(h + o, row.a, nullptr, syn + o, mem + o, out + o, alpha, beta, thr, size);
    } else {
      original_row<2, kSpiking>(h + o, row.a, row.b, syn + o, mem + o, out + o, alpha, beta, thr, size);
    }
  }
}

template <bool kSpiking, typename Input>
void normalised_step(const float* recurrent, int64_t recurrent_stride, Input input, float* syn, float* mem,
                     float* out, const float* alpha, const float* beta, float thr, int64_t rows, int64_t size) {
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t o = i * size;
    const float* rec = recurrent + i * recurrent_stride;
    const RowInput row = input(i);
    if (row.a == nullptr) {
      normalised_row<0, kSpiking>(rec, nullptr, nullptr, syn + o, mem + o, out + o, alpha, beta, thr, size);
    } else if (row.b == nullptr) {
      normalised_row<1, kSpiking>(rec, row.a, nullptr, syn + o, mem + o, out + o, alpha, beta, thr, size);
    } else {
      normalised_row<2, kSpiking>(rec, row.a, row.b, syn + o, mem + o, out + o, alpha, beta, thr, size);
    }
  }
}

// the readout of one step for every row: the leaky double integrator of the row's projection y
// (row i at y + i * y_stride, one value per class) and the running maximum over time, as
// RecurrentSNN._ReadoutLoop.step computes it in Python: each recursion a product and a sum
// rounded apart (the original's `beta * o + flt`, not a fused multiply-add), ``delayed``: the
// original's o_t = beta o_{t-1} + flt_{t-1} (o before flt), else o_t = beta o_{t-1} + flt_t; the
// maximum as torch.maximum, NaN propagating
void readout_step(const float* y, int64_t y_stride, float* flt, float* o, float* best, const float* alpha,
                  const float* beta, bool delayed, int64_t rows, int64_t classes) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < classes; ++c) {
      const int64_t k = i * classes + c;
      if (delayed) {
        o[k] = beta[c] * o[k] + flt[k];
        flt[k] = alpha[c] * flt[k] + y[i * y_stride + c];
      } else {
        flt[k] = alpha[c] * flt[k] + y[i * y_stride + c];
        o[k] = beta[c] * o[k] + flt[k];
      }
      const float value = o[k], previous = best[k];
      best[k] = (std::isnan(previous) || std::isnan(value)) ? NAN : (previous < value ? value : previous);
    }
  }
}

// bit k set where s[k] is not 0, for n <= 64 values (a movemask per vector where the build has one)
uint64_t nonzero_bits(const float* s, int64_t n) {
  uint64_t bits = 0;
  int64_t k = 0;
#if defined(__AVX__)
  const __m256 zero = _mm256_setzero_ps();
  for (; k + 8 <= n; k += 8) {
    const __m256 nonzero = _mm256_cmp_ps(_mm256_loadu_ps(s + k), zero, _CMP_NEQ_UQ);
    bits |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_ps(nonzero))) << k;
  }
#elif defined(__SSE2__)
  const __m128 zero = _mm_setzero_ps();
  for (; k + 4 <= n; k += 4) {
    bits |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(s + k), zero))))
            << k;
  }
#endif
  for (; k < n; ++k) bits |= static_cast<uint64_t>(s[k] != 0.0f) << k;
  return bits;
}

// A product of one step's spikes y = spikes W, for spikes that are 0 or 1 (rows x size; W size x
// classes, contiguous, finite: W_out for the readout, [W_rec | W_out] for the normalised network's
// spike recurrence): each y[i][c] the sum of W[j][c] over row i's spiking j, added in index order
// to +0, each addition rounded in float32. That is the product's own value wherever the BLAS
// computes each entry as a dot product in index order from +0: a spike's term is W[j][c]
// exactly, a silent neuron's a zero, which leaves a nonzero sum as it is and turns no
// zero sum into -0 (x + (-x) is +0 when rounding to nearest), so leaving the zeros out changes no
// bit. At 100 windows and the trained ECG networks' 5-9 % of neurons spiking per step, MKL's
// two-column product took 13.4 us of a step's 49 on an AVX2 EPYC (its skinny path, 2.5 GFLOP/s),
// these sums 1.9 (10.0 with every neuron spiking). memristor_mat.models.spiking_loop checks, once
// per process, shape and thread count, that torch's product gives these bits here
// (spike_product_disagreement) before the loop sums.
// ``words``: the caller's scratch of (size + 63) / 64 words, a row's spiking neurons (allocated
// once per draw, not at every step)
void spike_projection_rows(const float* __restrict__ spikes, const float* __restrict__ w, float* __restrict__ y,
                           int64_t rows, int64_t size, int64_t classes, std::vector<uint64_t>& words) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* s = spikes + i * size;
    float* yi = y + i * classes;
    for (size_t word = 0; word < words.size(); ++word) {
      const int64_t base = static_cast<int64_t>(word) * 64;
      words[word] = nonzero_bits(s + base, std::min<int64_t>(64, size - base));
    }
    // each class's sum in a register: through memory, a sum waits on its store at every term
    if (classes == 2) {  // the ECG task's: both sums in one pass
      float first = 0.0f, second = 0.0f;
      for (size_t word = 0; word < words.size(); ++word) {
        for (uint64_t bits = words[word]; bits != 0; bits &= bits - 1) {
          const float* wj = w + (static_cast<int64_t>(word) * 64 + __builtin_ctzll(bits)) * 2;
          first += wj[0];
          second += wj[1];
        }
      }
      yi[0] = first;
      yi[1] = second;
      continue;
    }
    // wider: a spiking neuron's whole row added at once (vectorised over the columns, each
    // column's sum still in index order), as for the normalised network's [W_rec | W_out]
    for (int64_t c = 0; c < classes; ++c) yi[c] = 0.0f;
    for (size_t word = 0; word < words.size(); ++word) {
      for (uint64_t bits = words[word]; bits != 0; bits &= bits - 1) {
        const float* wj = w + (static_cast<int64_t>(word) * 64 + __builtin_ctzll(bits)) * classes;
        for (int64_t c = 0; c < classes; ++c) yi[c] += wj[c];
      }
    }
  }
}

bool all_finite(const at::Tensor& t) {
  const float* p = t.data_ptr<float>();
  bool finite = true;
  for (int64_t k = 0; k < t.numel(); ++k) finite = finite && std::isfinite(p[k]);
  return finite;
}

// MKL's C function that sets the threads of the calling thread's MKL calls (the symbol torch's
// MKL exports; null where torch has no MKL). In a worker of at::parallel_for, MKL still checks for
// threads to use at every product: one thread per worker made a step of two workers 5-6 % faster
// (48.0 -> 45.4 us per draw and step, a one-thread worker's time), with the same results.
// The guard restores the thread's previous setting (0: MKL's default), also when the loop throws.
class OneMklThread {
 public:
  OneMklThread() : set_(function()), previous_(set_ ? set_(1) : 0) {}
  ~OneMklThread() {
    if (set_) set_(previous_);
  }
  OneMklThread(const OneMklThread&) = delete;
  OneMklThread& operator=(const OneMklThread&) = delete;

 private:
  using SetLocalThreads = int (*)(int);
  static SetLocalThreads function() {
    static const auto set = reinterpret_cast<SetLocalThreads>(dlsym(RTLD_DEFAULT, "MKL_Set_Num_Threads_Local"));
    return set;
  }
  SetLocalThreads set_;
  int previous_;
};

void check(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, name, " must be a float32 CPU tensor");
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got ", t.dim());
}

// out = a @ w for one draw, as Python's loop computes a draw's product: torch.bmm where the weight
// has draws (Python's loop makes all the draws' products in one call; here the same call on one
// draw's (1, rows, columns) views), torch.mm where it has none (the same rows: the input's drive
// of a shared W_in, or an evaluation without draws). at::mm_out, the kernel bmm runs for each
// draw of a larger product, is not bmm for the smallest: under 400 multiply-adds bmm takes
// ATen's own loop (aten/src/ATen/native/LinearAlgebra.cpp, bmm_out_or_baddbmm_), in index order
// without fused multiply-adds, and MKL's product of one row rounds otherwise on an Intel Xeon (not
// on the AMD EPYCs checked), so a batch of one window (its readout's (1 x 100) @ (100 x 2), its
// graded input's (1 x 2) @ (2 x 100)) gave the tanh twin other logits there (2026-12-07). The
// views are made once per pass: bmm itself costs 0.1-0.5 us more a call than mm.
void draw_product(bool batched, at::Tensor& out1, const at::Tensor& a1, const at::Tensor& w1) {
  if (batched) {
    at::bmm_out(out1, a1, w1);
  } else {
    auto out = out1.select(0, 0);
    at::mm_out(out, a1.select(0, 0), w1.select(0, 0));
  }
}

}  // namespace

// The logits (draws, batch, classes), the maximum over time of the readout membrane, from the
// events x (batch, T, inputs) and the draws' weights w_in (draws, inputs, H), w_rec (draws, H, H;
// masked), w_out (draws, H, classes) (expanded views are fine); alpha and beta (H,), the hidden
// neurons' constants; readout_alpha and readout_beta (classes,), the output neurons'.
// ``spiking``: spiking neurons, else the tanh twin's (outputs tanh(mem - threshold), through
// at::tanh_, the kernel of Python's loop, on each draw's state: the same numbers wherever torch's
// tanh gives an element the same value at any place in a tensor, which the caller checks).
// ``original``: SPEC §3.1's dynamics (and its delayed readout), else the normalised ones,
// recurring on the outputs (``on_spikes``) or on the synaptic currents. ``input_draws``: W_in has
// draws of its own (its product as torch.bmm's, else as torch.mm's: draw_product), ``weight_draws``
// the same for W_rec and W_out (the caller sends shared ones only where nothing has draws: Python's
// loop multiplies a shared W_rec or W_out with all the draws' rows at once). ``summed_readout``: the
// spiking networks' readout projection as sums of W_out's rows (spike_projection_rows), where the
// caller found that torch's product gives those bits; the product otherwise, for a draw whose
// W_out is not finite (a silent neuron's 0 x inf is NaN in the product). ``summed_recurrent``: the
// same for the normalised network's product of spikes with [W_rec | W_out] (spike recurrence).
at::Tensor spiking_logits(const at::Tensor& x, const at::Tensor& w_in, const at::Tensor& w_rec,
                          const at::Tensor& w_out, const at::Tensor& alpha, const at::Tensor& beta,
                          const at::Tensor& readout_alpha, const at::Tensor& readout_beta,
                          double threshold, bool spiking, bool original, bool on_spikes, bool input_draws,
                          bool weight_draws, bool summed_readout, bool summed_recurrent, bool sparse_events) {
  check(x, "x", 3);
  check(w_in, "w_in", 3);
  check(w_rec, "w_rec", 3);
  check(w_out, "w_out", 3);
  check(alpha, "alpha", 1);
  check(beta, "beta", 1);
  check(readout_alpha, "readout_alpha", 1);
  check(readout_beta, "readout_beta", 1);
  const int64_t batch = x.size(0), steps = x.size(1), draws = w_rec.size(0);
  const int64_t size = w_rec.size(2), classes = w_out.size(2);
  TORCH_CHECK(w_in.size(0) == draws && w_out.size(0) == draws, "w_in, w_rec and w_out must have the same draws");
  TORCH_CHECK(w_in.size(1) == x.size(2) && w_in.size(2) == size && w_rec.size(1) == size && w_out.size(1) == size,
              "the weights' shapes do not match");
  const auto a = alpha.contiguous(), b = beta.contiguous();
  TORCH_CHECK(a.numel() == size && b.numel() == size, "alpha and beta must have one value per hidden neuron");
  const auto ra = readout_alpha.contiguous(), rb = readout_beta.contiguous();
  TORCH_CHECK(ra.numel() == classes && rb.numel() == classes,
              "readout_alpha and readout_beta must have one value per output neuron");
  auto logits = at::full({draws, batch, classes}, -INFINITY, x.options());
  if (batch == 0) return logits;
  TORCH_CHECK(steps > 0, "the input must have at least one time step");
  const float thr = static_cast<float>(threshold);
  const float* alpha_p = a.data_ptr<float>();
  const float* beta_p = b.data_ptr<float>();
  const float* readout_alpha_p = ra.data_ptr<float>();
  const float* readout_beta_p = rb.data_ptr<float>();
  const auto options = x.options();
  // the events read row by row (sparse_events: binary, at most two per row, RowInput)
  const auto events = sparse_events ? x.contiguous() : x;
  const float* events_p = events.data_ptr<float>();
  const int64_t inputs = x.size(2);

  // one draw per task: a product on a draw's rows split in parts may round differently
  at::parallel_for(0, draws, 1, [&](int64_t first, int64_t last) {
    // the caller's no_grad does not reach the pool's threads; the weights may be parameters
    c10::NoGradGuard no_grad;
    const OneMklThread one_mkl_thread;
    auto state = [&]() { return at::empty({batch, size}, options); };
    at::Tensor drive = state(), syn = state(), mem = state(), out = state();
    at::Tensor h = state(), h_next = state();  // original: the recurrence's input current
    at::Tensor recurrent = state();            // normalised on currents: syn @ W_rec
    at::Tensor product, w_rec_out;             // normalised on spikes: out @ [W_rec | W_out]
    // the readout: the step's projection out @ W_out, its two integrators
    at::Tensor y = at::empty({batch, classes}, options), flt = at::empty({batch, classes}, options),
               o = at::empty({batch, classes}, options);
    // the (1, rows, columns) views draw_product multiplies in
    auto drive1 = drive.unsqueeze(0), out1 = out.unsqueeze(0), syn1 = syn.unsqueeze(0), y1 = y.unsqueeze(0),
         h1 = h.unsqueeze(0), h_next1 = h_next.unsqueeze(0), recurrent1 = recurrent.unsqueeze(0);
    at::Tensor product1, w_rec_out1;
    const auto x1 = x.unsqueeze(0);
    for (int64_t d = first; d < last; ++d) {
      syn.zero_();
      mem.zero_();
      out.zero_();
      h.zero_();
      flt.zero_();
      o.zero_();
      float* best = logits.select(0, d).data_ptr<float>();
      const auto readout = [&](const float* projection, int64_t stride) {
        readout_step(projection, stride, flt.data_ptr<float>(), o.data_ptr<float>(), best, readout_alpha_p,
                     readout_beta_p, original, batch, classes);
      };
      const auto wi = w_in.select(0, d), wr = w_rec.select(0, d), wo = w_out.select(0, d);
      const auto wi1 = w_in.narrow(0, d, 1), wr1 = w_rec.narrow(0, d, 1), wo1 = w_out.narrow(0, d, 1);
      const auto wi_rows = sparse_events ? wi.contiguous() : wi;
      const auto wo_rows = summed_readout && spiking ? wo.contiguous() : wo;
      const bool sum_readout = summed_readout && spiking && all_finite(wo_rows);
      std::vector<uint64_t> words((size + 63) / 64);  // spike_projection_rows' scratch
      // the step's readout projection out @ W_out, integrated
      const auto project = [&]() {
        if (sum_readout) {
          spike_projection_rows(out.data_ptr<float>(), wo_rows.data_ptr<float>(), y.data_ptr<float>(), batch, size,
                                classes, words);
        } else {
          draw_product(weight_draws, y1, out1, wo1);
        }
        readout(y.data_ptr<float>(), classes);
      };
      const float* wi_p = wi_rows.data_ptr<float>();
      bool sum_recurrent = false;
      if (!original && on_spikes) {
        // the product Python's loop makes: the readout columns ride on the recurrent product
        w_rec_out = at::cat({wr, wo}, 1);
        product = at::empty({batch, size + classes}, options);
        w_rec_out1 = w_rec_out.unsqueeze(0);
        product1 = product.unsqueeze(0);
        sum_recurrent = summed_recurrent && spiking && all_finite(w_rec_out);
      }
      // a step of the normalised dynamics on the recurrent current ``recurrent`` (rows
      // ``stride`` apart), then the tanh twin's outputs
      const auto normalised = [&](const float* recurrent_p, int64_t stride, const auto& input) {
        float *syn_p = syn.data_ptr<float>(), *mem_p = mem.data_ptr<float>(), *out_p = out.data_ptr<float>();
        if (spiking) {
          normalised_step<true>(recurrent_p, stride, input, syn_p, mem_p, out_p, alpha_p, beta_p, thr, batch, size);
        } else {
          normalised_step<false>(recurrent_p, stride, input, syn_p, mem_p, out_p, alpha_p, beta_p, thr, batch, size);
          out.tanh_();
        }
      };
      for (int64_t t = 0; t < steps; ++t) {
        if (!sparse_events) draw_product(input_draws, drive1, x1.select(2, t), wi1);
        const float* drive_p = drive.data_ptr<float>();
        const auto input = [&](int64_t i) {
          return sparse_events ? event_rows(events_p, i, t, steps, inputs, wi_p, size)
                               : RowInput{drive_p + i * size, nullptr};
        };
        if (original) {
          draw_product(weight_draws, h_next1, h1, wr1);
          std::swap(h, h_next);
          std::swap(h1, h_next1);
          float *h_p = h.data_ptr<float>(), *syn_p = syn.data_ptr<float>(), *mem_p = mem.data_ptr<float>(),
                *out_p = out.data_ptr<float>();
          if (spiking) {
            original_step<true>(h_p, input, syn_p, mem_p, out_p, alpha_p, beta_p, thr, batch, size);
          } else {
            original_step<false>(h_p, input, syn_p, mem_p, out_p, alpha_p, beta_p, thr, batch, size);
            out.tanh_();
          }
          project();  // the output feeds nothing back
        } else if (on_spikes) {
          if (sum_recurrent) {  // out: still the previous step's
            spike_projection_rows(out.data_ptr<float>(), w_rec_out.data_ptr<float>(), product.data_ptr<float>(), batch,
                                  size, size + classes, words);
          } else {
            draw_product(weight_draws, product1, out1, w_rec_out1);
          }
          if (t > 0) readout(product.data_ptr<float>() + size, size + classes);  // step t - 1's
          normalised(product.data_ptr<float>(), size + classes, input);
        } else {
          draw_product(weight_draws, recurrent1, syn1, wr1);
          normalised(recurrent.data_ptr<float>(), size, input);
          project();
        }
      }
      if (!original && on_spikes) project();  // the last step's, as Python's loop: a product of its own
    }
  });
  return logits;
}

// spike_projection_rows as an operator, for memristor_mat.models.spiking_loop's check against torch's
// products: y (count, rows, classes) from spikes (count, rows, size) of 0 or 1 and a finite w
// (count, size, classes), a sum per instance, as torch.bmm's operands
at::Tensor spike_projection(const at::Tensor& spikes, const at::Tensor& w) {
  check(spikes, "spikes", 3);
  check(w, "w", 3);
  TORCH_CHECK(spikes.size(0) == w.size(0) && spikes.size(2) == w.size(1),
              "spikes (count, rows, size) and w (count, size, classes) do not match");
  const auto s = spikes.contiguous(), rows = w.contiguous();
  TORCH_CHECK(at::logical_or(s == 0, s == 1).all().item<bool>(), "spikes must be 0 or 1");
  TORCH_CHECK(all_finite(rows), "w must be finite");
  const int64_t count = s.size(0), r = s.size(1), size = s.size(2), classes = rows.size(2);
  auto y = at::empty({count, r, classes}, spikes.options());
  std::vector<uint64_t> words((size + 63) / 64);
  for (int64_t k = 0; k < count; ++k) {
    spike_projection_rows(s.data_ptr<float>() + k * r * size, rows.data_ptr<float>() + k * size * classes,
                          y.data_ptr<float>() + k * r * classes, r, size, classes, words);
  }
  return y;
}

// --- The training time loops: snn.py's _OriginalTimeLoop and _NormalisedTimeLoop, forward and
// backward, as the same ATen operations in the same order on the same tensors. A training batch
// of the ECG network is (16, 100) per step, where a Python call costs as much as the arithmetic
// it starts; here only the dispatcher is paid per operation. The numbers are the Python
// functions' by construction (the same kernels, also for tanh: the same tensors reach them), any
// dtype; the tests compare them bit for bit. One exception to "the same kernels": the original
// backward's element-wise updates in float32 run as one pass of the same IEEE multiplies and
// adds (original_backward_step), 20 % off that backward pass for the tanh twin. Below autograd: the caller, an autograd.Function,
// records the loop as one node.

// forward of the original dynamics: the outputs (batch, T, H) (mem_{t-1}, or tanh(mem_{t-1} -
// threshold)), the recurrent product's left factors h_{t-1} and, for tanh, the outputs per step
std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> original_time_loop(
    const at::Tensor& drive, const at::Tensor& w_rec, const at::Tensor& alpha, const at::Tensor& beta,
    const at::Tensor& threshold, double threshold_value, bool spiking) {
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  TORCH_CHECK(drive.dim() == 3, "drive must be (batch, T, H), got ", drive.dim(), " dimensions");
  const int64_t batch = drive.size(0), steps = drive.size(1), size = drive.size(2);
  at::Tensor h = at::zeros({batch, size}, drive.options());
  at::Tensor syn = at::zeros_like(h), mem = at::zeros_like(h), reset = at::empty_like(h);
  std::vector<at::Tensor> inputs, outputs;
  inputs.reserve(steps);
  outputs.reserve(steps);
  for (int64_t t = 0; t < steps; ++t) {
    inputs.push_back(h);
    h = at::addmm(drive.select(1, t), h, w_rec);
    outputs.push_back(spiking ? mem : at::tanh(at::sub(mem, threshold)));
    at::gt_out(reset, mem, threshold);
    mem = at::sub(at::addcmul(syn, beta, mem), reset, threshold_value);
    syn = at::addcmul(h, alpha, syn);
  }
  at::Tensor stacked = at::stack(outputs, 1);
  if (spiking) outputs.clear();
  return {stacked, inputs, outputs};
}

// original_time_loop_backward's element-wise updates of one step where all three gradients from
// step t + 1 are there (every step but the last two): d_mem_{t-1} = g + d_mem * beta, d_syn_{t-1} =
// d_mem + d_syn * alpha, d_h += d_syn, in one pass instead of five ATen calls. Each value is one
// multiply and one add, each rounded apart as by the kernels it replaces (built with
// -ffp-contract=off; no fused multiply-add), so the numbers are theirs. ``g``: the step's output
// gradient (through tanh's derivative), rows ``g_row`` apart.
void original_backward_step(const float* __restrict__ g, int64_t g_row, const float* __restrict__ d_mem,
                            const float* __restrict__ d_syn, float* __restrict__ d_h, float* __restrict__ d_mem_prev,
                            float* __restrict__ d_syn_prev, const float* __restrict__ alpha,
                            const float* __restrict__ beta, int64_t batch, int64_t size) {
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t o = b * size;
#pragma GCC ivdep
    for (int64_t j = 0; j < size; ++j) {
      const float m = d_mem[o + j], s = d_syn[o + j];
      d_mem_prev[o + j] = g[b * g_row + j] + m * beta[j];
      d_syn_prev[o + j] = m + s * alpha[j];
      d_h[o + j] = d_h[o + j] + s;
    }
  }
}

// whether ``t`` is a float32 CPU tensor the fused loops can read as (batch, size) rows: contiguous,
// or (``row_strided``) with contiguous rows any distance apart
bool float_rows(const at::Tensor& t, int64_t batch, int64_t size, bool row_strided = false) {
  return t.scalar_type() == at::kFloat && t.device().is_cpu() && t.dim() == 2 && t.size(0) == batch &&
         t.size(1) == size && (row_strided ? t.stride(1) == 1 : t.is_contiguous());
}

// whether ``t`` is a float32 CPU vector of ``size`` per-unit values (broadcast over the rows)
bool float_units(const at::Tensor& t, int64_t size) {
  return t.scalar_type() == at::kFloat && t.device().is_cpu() && t.dim() == 1 && t.size(0) == size &&
         t.is_contiguous();
}

// backward of original_time_loop: {gradient of the drive (batch, T, H), of w_rec}, or none where
// no step's h fed anything (fewer than three steps)
std::vector<at::Tensor> original_time_loop_backward(const at::Tensor& grad_outputs, at::TensorList inputs,
                                                    at::TensorList tanh_outputs, const at::Tensor& w_rec,
                                                    const at::Tensor& alpha, const at::Tensor& beta) {
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t steps = static_cast<int64_t>(inputs.size());
  const bool spiking = tanh_outputs.empty();
  TORCH_CHECK(grad_outputs.dim() == 3 && grad_outputs.size(1) == steps && (spiking || tanh_outputs.size() == inputs.size()),
              "original_time_loop_backward: the saved steps do not match the gradient");
  // the gradients reaching step t's mem_t, syn_t and h_t from step t + 1 (undefined: none)
  at::Tensor d_mem, d_syn, d_h, d_w;
  std::vector<at::Tensor> d_drive(steps);
  const at::Tensor w_rec_t = w_rec.t();
  const int64_t batch = grad_outputs.size(0), size = grad_outputs.size(2);
  const bool fused = float_units(alpha, size) && float_units(beta, size);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const at::Tensor grad = grad_outputs.select(1, t);
    at::Tensor d_mem_prev = spiking ? grad : at::tanh_backward(grad, tanh_outputs[t]);
    at::Tensor d_syn_prev;
    if (fused && d_mem.defined() && d_syn.defined() && d_h.defined() && float_rows(d_mem_prev, batch, size, true) &&
        float_rows(d_mem, batch, size) && float_rows(d_syn, batch, size) && float_rows(d_h, batch, size)) {
      // d_h: the recurrent product of the step after, this loop's own tensor: updated in place
      at::Tensor d_mem_next = at::empty_like(d_mem), d_syn_next = at::empty_like(d_syn);
      original_backward_step(d_mem_prev.data_ptr<float>(), d_mem_prev.stride(0), d_mem.data_ptr<float>(),
                             d_syn.data_ptr<float>(), d_h.data_ptr<float>(), d_mem_next.data_ptr<float>(),
                             d_syn_next.data_ptr<float>(), alpha.data_ptr<float>(), beta.data_ptr<float>(), batch,
                             size);
      d_mem_prev = d_mem_next;
      d_syn_prev = d_syn_next;
    } else {
      if (d_mem.defined()) {  // mem_t = syn_{t-1} + beta * mem_{t-1} - threshold * reset
        d_syn_prev = d_mem;
        d_mem_prev = at::add(d_mem_prev, at::mul(d_mem, beta));
      }
      if (d_syn.defined()) {  // syn_t = h_t + alpha * syn_{t-1}
        d_h = d_h.defined() ? at::add(d_h, d_syn) : d_syn;
        const at::Tensor from_syn = at::mul(d_syn, alpha);
        d_syn_prev = d_syn_prev.defined() ? at::add(d_syn_prev, from_syn) : from_syn;
      }
    }
    if (d_h.defined()) {  // h_t = drive_t + h_{t-1} @ w_rec
      d_drive[t] = d_h;
      const at::Tensor product = at::mm(inputs[t].t(), d_h);
      d_w = d_w.defined() ? at::add(d_w, product) : product;
      d_h = t > 0 ? at::mm(d_h, w_rec_t) : at::Tensor();
    }
    d_mem = d_mem_prev;
    d_syn = d_syn_prev;
  }
  if (!d_w.defined()) return {};
  const at::Tensor zeros = at::zeros_like(grad_outputs.select(1, 0));  // as autograd's unbind gives them
  for (auto& d : d_drive) {
    if (!d.defined()) d = zeros;
  }
  return {at::stack(d_drive, 1), d_w};
}

// forward of the normalised dynamics with spike recurrence: the outputs (batch, T, H) (spikes, or
// tanh(mem - threshold)), the recurrent product's left factors out_{t-1}, and per step the
// spike's surrogate slopes (spiking) or the outputs (tanh)
std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> normalised_time_loop(
    const at::Tensor& drive, const at::Tensor& w_rec, const at::Tensor& alpha, const at::Tensor& beta,
    const at::Tensor& threshold, const at::Tensor& scale, double threshold_value, bool spiking) {
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  TORCH_CHECK(drive.dim() == 3, "drive must be (batch, T, H), got ", drive.dim(), " dimensions");
  const int64_t batch = drive.size(0), steps = drive.size(1), size = drive.size(2);
  at::Tensor syn = at::zeros({batch, size}, drive.options());
  at::Tensor mem = at::zeros_like(syn), out = at::zeros_like(syn);
  std::vector<at::Tensor> inputs, outputs, slopes;
  inputs.reserve(steps);
  outputs.reserve(steps);
  slopes.reserve(spiking ? steps : 0);
  for (int64_t t = 0; t < steps; ++t) {
    inputs.push_back(out);
    syn = at::addmm(at::addcmul(drive.select(1, t), alpha, syn), out, w_rec);
    mem = at::lerp(syn, mem, beta);
    if (spiking) {
      out = at::gt(mem, threshold).to(mem.scalar_type());
      at::Tensor slope = at::sub(mem, threshold).abs_().mul_(scale).add_(1.0);
      slopes.push_back(slope.mul_(slope).reciprocal_());
      mem = at::sub(mem, out, threshold_value);
    } else {
      out = at::tanh(at::sub(mem, threshold));
    }
    outputs.push_back(out);
  }
  at::Tensor stacked = at::stack(outputs, 1);
  return {stacked, inputs, spiking ? slopes : outputs};
}

// backward of normalised_time_loop: {gradient of the drive (batch, T, H), of w_rec}; ``saved``:
// its slopes (spiking) or outputs (tanh)
std::vector<at::Tensor> normalised_time_loop_backward(const at::Tensor& grad_outputs, at::TensorList inputs,
                                                      at::TensorList saved, const at::Tensor& w_rec,
                                                      const at::Tensor& alpha, const at::Tensor& beta, bool spiking) {
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t steps = static_cast<int64_t>(inputs.size());
  TORCH_CHECK(grad_outputs.dim() == 3 && grad_outputs.size(1) == steps && saved.size() == inputs.size(),
              "normalised_time_loop_backward: the saved steps do not match the gradient");
  // the gradients reaching step t's out_t, mem_t (after the reset) and syn_t from step t + 1
  at::Tensor d_out, d_mem, d_syn, d_w, one_minus_beta;
  std::vector<at::Tensor> d_drive(steps);
  const at::Tensor w_rec_t = w_rec.t();
  for (int64_t t = steps - 1; t >= 0; --t) {
    const at::Tensor grad = grad_outputs.select(1, t);
    d_out = d_out.defined() ? at::add(grad, d_out) : grad;
    // the membrane before the reset: the reset passes d_mem through, the spike its slope
    at::Tensor d_m = spiking ? at::mul(d_out, saved[t]) : at::tanh_backward(d_out, saved[t]);
    if (d_mem.defined()) d_m = at::add(d_mem, d_m);
    if (!one_minus_beta.defined()) one_minus_beta = at::rsub(beta, 1);  // mem = lerp(syn_t, mem_{t-1}, beta)
    const at::Tensor from_lerp = at::mul(d_m, one_minus_beta);
    d_syn = d_syn.defined() ? at::add(d_syn, from_lerp) : from_lerp;
    d_mem = t > 0 ? at::mul(d_m, beta) : at::Tensor();
    // syn_t = addcmul(drive_t, alpha, syn_{t-1}) + out_{t-1} @ w_rec
    d_drive[t] = d_syn;
    const at::Tensor product = at::mm(inputs[t].t(), d_syn);
    d_w = d_w.defined() ? at::add(d_w, product) : product;
    d_out = t > 0 ? at::mm(d_syn, w_rec_t) : at::Tensor();
    d_syn = t > 0 ? at::mul(d_syn, alpha) : at::Tensor();
  }
  return {at::stack(d_drive, 1), d_w};
}

// snn.py's spike() on the original network's membranes after its training loop, in one pass
// instead of ten: the spikes ``step + (m - m) * slope`` (the step, or NaN where m is not finite,
// as autograd's expression gives them) and the surrogate slope ``1 / ((|m - thr| * scale + 1)^2)``
// that the backward pass multiplies the gradient by. Each operation is one IEEE operation rounded
// apart, as torch's kernels do them one by one (built with -ffp-contract=off): the same values.
std::tuple<at::Tensor, at::Tensor> spike_with_slope(const at::Tensor& membrane, double threshold, double scale) {
  TORCH_CHECK(membrane.device().is_cpu() && membrane.scalar_type() == at::kFloat,
              "spike_with_slope: membrane must be a float32 CPU tensor");
  const at::Tensor m = membrane.contiguous();
  at::Tensor spikes = at::empty_like(m), slope = at::empty_like(m);
  const float thr = static_cast<float>(threshold), k = static_cast<float>(scale);
  TORCH_CHECK(static_cast<double>(thr) == threshold && static_cast<double>(k) == scale,
              "spike_with_slope: threshold and scale must be float32 values");
  const float* in = m.data_ptr<float>();
  float* out = spikes.data_ptr<float>();
  float* s = slope.data_ptr<float>();
  at::parallel_for(0, m.numel(), 4096, [&](int64_t first, int64_t last) {
#pragma GCC ivdep
    for (int64_t i = first; i < last; ++i) {
      const float v = in[i];
      const float a = std::fabs(v - thr) * k + 1.0f;
      const float slope_i = 1.0f / (a * a);
      s[i] = slope_i;
      out[i] = (v > thr ? 1.0f : 0.0f) + (v - v) * slope_i;
    }
  });
  return {spikes, slope};
}

// Operators of torch's dispatcher in the namespace named as the build (torch.ops.<name>), called
// as torch's own operations are: without the GIL, so another Python thread may go on meanwhile.
// A fragment: the library's other files (csrc/*.cpp, memristor_mat/native.py) add theirs. The macro
// pastes its namespace argument as written: the indirection expands the name first.
#define MEMRISTOR_MAT_LIBRARY(name, m) TORCH_LIBRARY_FRAGMENT(name, m)
MEMRISTOR_MAT_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("spiking_logits", &spiking_logits);
  m.def("spike_projection", &spike_projection);
  m.def("original_time_loop", &original_time_loop);
  m.def("original_time_loop_backward", &original_time_loop_backward);
  m.def("normalised_time_loop", &normalised_time_loop);
  m.def("normalised_time_loop_backward", &normalised_time_loop_backward);
  m.def("spike_with_slope", &spike_with_slope);
}
