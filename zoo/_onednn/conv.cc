// zoo's oneDNN convolutions for XLA:CPU, as XLA FFI handlers (see zoo/_onednn/__init__.py).
//
// Three handlers, float32 or bfloat16 (all three buffers of one call in the same type; bfloat16 accumulates in
// float32 and runs on AMX / AVX512-BF16 where the CPU has them), NHWC activations and HWIO kernels (XLA:CPU's
// canonical form):
//   zoo_onednn_conv_fwd    y  = conv(x, w)              x (N,H,W,C), w (KH,KW,C,O) -> y (N,OH,OW,O)
//   zoo_onednn_conv_dgrad  dx = conv_backward_data(g, w)
//   zoo_onednn_conv_wgrad  dw = conv_backward_weights(x, g)
// with attributes stride_h/w, dilation_h/w (XLA's convention: 1 = none), pad_top/bottom/left/right.
//
// All three run on NHWC activations (oneDNN's brgconv forward and input-gradient kernels and its jit weight-gradient
// kernel take them directly) and weights in the layout oneDNN chooses, reordered from HWIO on each call (a few
// hundred KB to MB; on the plain HWIO layout its float32 kernels ran a 3x3 convolution of 256 channels at 16x16 1.5x
// slower here; in bfloat16 AMX wants them blocked). The gradients took oneDNN's channel-blocked layouts before, with
// the activations reordered in and out on every call: 514 reorders, 13% of oneDNN's time in NCSN's MNIST training
// step; on NHWC that step ran 1.07x faster (cards/ncsn-bench.md, "Stop 27"). Where oneDNN has no NHWC kernel for a
// gradient, it takes the layouts oneDNN chooses, with the reorders.
// The bfloat16 weight gradient accumulates into float32 weights, rounded to bfloat16 on the way out (2x faster than
// bfloat16 ones here; zoo/_onednn/__init__.py runs bfloat16 weight gradients on the float32 kernel anyway: the
// faster in programs). Primitives are built once per shape and kept; each call passes its own scratchpad
// (oneDNN's user scratchpad mode). XLA:CPU runs independent operations concurrently (a layer's input and weight
// gradients), but each call runs on all cores (oneDNN's OpenMP team), so calls run one at a time (`OneAtATime`,
// shared with the other handlers of this library, common.h): two teams at once oversubscribe the cores (NCSN's
// CIFAR-10 training step 15% slower than on XLA's kernels alone, 3% with the lock; cards/ncsn-bench.md, "Stop 22").

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

struct Geometry {
  int64_t n, h, w, c, kh, kw, o, sh, sw, dh, dw, pt, pb, pl, pr;
  memory::data_type type;

  int64_t Oh() const { return (h + pt + pb - dh * (kh - 1) - 1) / sh + 1; }
  int64_t Ow() const { return (w + pl + pr - dw * (kw - 1) - 1) / sw + 1; }
  memory::desc Src(memory::format_tag tag = memory::format_tag::nhwc) const {
    return memory::desc({n, c, h, w}, type, tag);
  }
  memory::desc Wei(memory::format_tag tag = memory::format_tag::hwio) const { return Wei(tag, type); }
  memory::desc Wei(memory::format_tag tag, memory::data_type t) const {
    return memory::desc({o, c, kh, kw}, t, tag);
  }
  memory::desc Dst(memory::format_tag tag = memory::format_tag::nhwc) const {
    return memory::desc({n, o, Oh(), Ow()}, type, tag);
  }
  dnnl::convolution_forward::primitive_desc Forward(memory::format_tag act, memory::format_tag wei) const {
    return dnnl::convolution_forward::primitive_desc(
        Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, Src(act), Wei(wei),
        Dst(act), {sh, sw}, {dh - 1, dw - 1}, {pt, pl}, {pb, pr}, UserScratchpad());
  }
  std::string Key(char kind) const {
    std::string key(1, kind);
    key += type == memory::data_type::bf16 ? "b" : "f";
    for (int64_t v : {n, h, w, c, kh, kw, o, sh, sw, dh, dw, pt, pb, pl, pr}) key += "," + std::to_string(v);
    return key;
  }
};

// A primitive with the layouts it wants for its two inputs and its output.
struct Op {
  dnnl::primitive primitive;
  memory::desc in0, in1, out, scratchpad;
};


// A gradient primitive's descriptor (`PrimitiveDesc`: backward data or backward weights), hinted by the forward it
// differentiates: on NHWC activations where oneDNN has a kernel for them, else on the layouts it prefers (`any`).
template <typename PrimitiveDesc>
PrimitiveDesc Backward(const Geometry& g, memory::data_type wei_type) {
  const auto any = memory::format_tag::any, nhwc = memory::format_tag::nhwc;
  auto make = [&](memory::format_tag act) {
    return PrimitiveDesc(Engine(), dnnl::algorithm::convolution_direct, g.Src(act), g.Wei(any, wei_type), g.Dst(act),
                         {g.sh, g.sw}, {g.dh - 1, g.dw - 1}, {g.pt, g.pl}, {g.pb, g.pr}, g.Forward(act, any),
                         UserScratchpad());
  };
  try {
    return make(nhwc);
  } catch (const dnnl::error&) {  // no NHWC kernel for this one: oneDNN's layouts, reordered in and out
    return make(any);
  }
}

std::shared_ptr<const Op> Build(const Geometry& g, char kind) {
  auto op = std::make_shared<Op>();
  if (kind == 'f') {
    auto pd = g.Forward(memory::format_tag::nhwc, memory::format_tag::any);
    op->primitive = dnnl::convolution_forward(pd);
    op->in0 = pd.src_desc(), op->in1 = pd.weights_desc(), op->out = pd.dst_desc();
    op->scratchpad = pd.scratchpad_desc();
  } else if (kind == 'd') {
    auto pd = Backward<dnnl::convolution_backward_data::primitive_desc>(g, g.type);
    op->primitive = dnnl::convolution_backward_data(pd);
    op->in0 = pd.diff_dst_desc(), op->in1 = pd.weights_desc(), op->out = pd.diff_src_desc();
    op->scratchpad = pd.scratchpad_desc();
  } else {
    auto pd = Backward<dnnl::convolution_backward_weights::primitive_desc>(g, memory::data_type::f32);
    op->primitive = dnnl::convolution_backward_weights(pd);
    op->in0 = pd.src_desc(), op->in1 = pd.diff_dst_desc(), op->out = pd.diff_weights_desc();
    op->scratchpad = pd.scratchpad_desc();
  }
  return op;
}

std::shared_ptr<const Op> Get(const Geometry& g, char kind) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<const Op>> ops;
  const std::string key = g.Key(kind);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(key);
    if (it != ops.end()) return it->second;
  }
  auto op = Build(g, kind);  // outside the lock: building may take milliseconds
  std::lock_guard<std::mutex> lock(mu);
  return ops.emplace(key, op).first->second;
}

void Reorder(const memory& from, const memory& to, dnnl::stream& stream) {
  auto pd = dnnl::reorder::primitive_desc(from, to, UserScratchpad());
  memory scratchpad(pd.scratchpad_desc(), Engine());
  dnnl::reorder(pd).execute(stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
}

// `user` in the layout `want`: itself, or a reordered copy.
memory Input(const memory& user, const memory::desc& want, dnnl::stream& stream) {
  if (user.get_desc() == want) return user;
  memory m(want, Engine());
  Reorder(user, m, stream);
  return m;
}

// Runs the `kind` primitive ('f' forward, 'd' input gradient, 'w' weight gradient) of geometry `g` on user
// buffers in the plain layouts (inputs `in0`, `in1`, output `out`, in the primitive's argument order), reordering
// where the primitive wants others. Every oneDNN error, building or running, comes back as an FFI error.
ffi::Error Run(const Geometry& g, char kind, void* in0, void* in1, void* out) {
  struct Role {
    int arg;
    memory::desc desc;
  };
  try {
    const Role src{DNNL_ARG_SRC, g.Src()}, wei{DNNL_ARG_WEIGHTS, g.Wei()}, dst{DNNL_ARG_DST, g.Dst()};
    const Role d_src{DNNL_ARG_DIFF_SRC, g.Src()}, d_wei{DNNL_ARG_DIFF_WEIGHTS, g.Wei()};
    const Role d_dst{DNNL_ARG_DIFF_DST, g.Dst()};
    const Role roles[3] = {kind == 'd' ? d_dst : src, kind == 'w' ? d_dst : wei,
                           kind == 'f' ? dst : kind == 'd' ? d_src : d_wei};
    auto op = Get(g, kind);
    std::lock_guard<std::mutex> one_at_a_time(zoo_native::OneAtATime());  // (header)
    dnnl::stream stream(Engine());
    memory a = Input(memory(roles[0].desc, Engine(), in0), op->in0, stream);
    memory b = Input(memory(roles[1].desc, Engine(), in1), op->in1, stream);
    memory user_out(roles[2].desc, Engine(), out);
    const bool direct = roles[2].desc == op->out;
    memory result = direct ? user_out : memory(op->out, Engine());
    memory scratchpad(op->scratchpad, Engine());  // this call's own
    op->primitive.execute(stream, {{roles[0].arg, a}, {roles[1].arg, b}, {roles[2].arg, result},
                                   {DNNL_ARG_SCRATCHPAD, scratchpad}});
    if (!direct) Reorder(result, user_out, stream);
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + e.what());
  }
  return ffi::Error::Success();
}

// The geometry of a call: activation and kernel dimensions, the attributes, and the one element type of the
// three buffers (float32 or bfloat16; anything else is an error naming the types).
ffi::ErrorOr<Geometry> Make(ffi::Span<const int64_t> act, ffi::Span<const int64_t> wei,
                            std::initializer_list<ffi::DataType> types, int64_t sh, int64_t sw, int64_t dh,
                            int64_t dw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  const ffi::DataType t = *types.begin();
  for (ffi::DataType u : types) {
    if (u != t || (t != ffi::DataType::F32 && t != ffi::DataType::BF16)) {
      return ffi::Unexpected(ffi::Error::InvalidArgument(
          "zoo's oneDNN convolution takes float32 or bfloat16 buffers, all of one type"));
    }
  }
  const memory::data_type type = t == ffi::DataType::F32 ? memory::data_type::f32 : memory::data_type::bf16;
  return Geometry{act[0], act[1], act[2], act[3], wei[0], wei[1], wei[3], sh, sw, dh, dw, pt, pb, pl, pr, type};
}

ffi::Error Forward(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> y, int64_t sh, int64_t sw,
                   int64_t dh, int64_t dw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  auto g = Make(x.dimensions(), w.dimensions(), {x.element_type(), w.element_type(), y->element_type()}, sh, sw, dh,
                dw, pt, pb, pl, pr);
  if (g.has_error()) return g.error();
  return Run(*g, 'f', x.untyped_data(), w.untyped_data(), y->untyped_data());
}

ffi::Error DataGrad(ffi::AnyBuffer dy, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> dx, int64_t sh, int64_t sw,
                    int64_t dh, int64_t dw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  auto g = Make(dx->dimensions(), w.dimensions(), {dy.element_type(), w.element_type(), dx->element_type()}, sh, sw,
                dh, dw, pt, pb, pl, pr);
  if (g.has_error()) return g.error();
  return Run(*g, 'd', dy.untyped_data(), w.untyped_data(), dx->untyped_data());
}

ffi::Error WeightGrad(ffi::AnyBuffer x, ffi::AnyBuffer dy, ffi::Result<ffi::AnyBuffer> dw_out, int64_t sh,
                      int64_t sw, int64_t dh, int64_t dw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  auto g = Make(x.dimensions(), dw_out->dimensions(), {x.element_type(), dy.element_type(), dw_out->element_type()},
                sh, sw, dh, dw, pt, pb, pl, pr);
  if (g.has_error()) return g.error();
  return Run(*g, 'w', x.untyped_data(), dy.untyped_data(), dw_out->untyped_data());
}

}  // namespace

std::mutex& zoo_native::OneAtATime() {
  static std::mutex running;
  return running;
}

#define ZOO_CONV_ATTRS                                                                                         \
  .Attr<int64_t>("stride_h").Attr<int64_t>("stride_w").Attr<int64_t>("dilation_h").Attr<int64_t>("dilation_w") \
      .Attr<int64_t>("pad_top").Attr<int64_t>("pad_bottom").Attr<int64_t>("pad_left").Attr<int64_t>("pad_right")

XLA_FFI_DEFINE_HANDLER_SYMBOL(zoo_onednn_conv_fwd, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() ZOO_CONV_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(zoo_onednn_conv_dgrad, DataGrad,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() ZOO_CONV_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(zoo_onednn_conv_wgrad, WeightGrad,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() ZOO_CONV_ATTRS);
