/* tensor_io.h — interpreter tensors to and from safetensors files. */
#ifndef SDC_TENSOR_IO_H
#define SDC_TENSOR_IO_H

#include "interp.h"
#include "safetensors.h"

/* Reads one tensor of the file as an interpreter tensor of dtype `as`
 * (floats converted; integers kept exact). */
Tensor *tensor_io_read(const StFile *f, const StTensor *t, DType as, SdcErr *err);
/* Loads a value for every input node of g from `path` by name; checks
 * shapes; *in gets one tensor per input in graph order. */
int tensor_io_load_inputs(const Graph *g, const char *path, Tensor ***in, int *nin, SdcErr *err);
/* Writes tensors (in their own dtypes) to a safetensors file, atomically. */
int tensor_io_save(const char *path, int n, const char *const *names, Tensor *const *t, SdcErr *err);

#endif
